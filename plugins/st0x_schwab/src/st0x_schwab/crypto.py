"""AES-256-GCM encryption of the stored Schwab tokens.

Blob layout: ``version (1 byte) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)``.
The nonce is fresh from the OS RNG for every encryption; the associated data
binds the blob to its purpose, so a blob cannot be replayed as something else.
Any tampering or a wrong key fails with :class:`TokenDecryptionError`.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from st0x_liquidity import AuthenticationRequiredError

VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
_AAD = b"st0x-schwab/tokens/v1"


class TokenDecryptionError(AuthenticationRequiredError):
    """The stored token record cannot be decrypted: wrong key or tampered data."""


class TokenCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("AES-256 needs a 32-byte key")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "TokenCipher(<key hidden>)"

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return bytes([VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, _AAD)

    def decrypt(self, blob: bytes) -> bytes:
        if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[0] != VERSION:
            raise TokenDecryptionError(
                "stored Schwab token record is malformed (truncated or unknown format); "
                "run `schwab auth` again"
            )
        nonce = blob[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[1 + NONCE_BYTES :], _AAD)
        except InvalidTag:
            raise TokenDecryptionError(
                "stored Schwab tokens failed authentication: the encryption_key is wrong "
                "or the record was tampered with. Check [broker] encryption_key "
                "(ST0X_BROKER_ENCRYPTION_KEY); if the key was changed on purpose, "
                "run `schwab auth` again"
            ) from None

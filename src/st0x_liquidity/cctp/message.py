"""CCTP V2 messages as bytes: the MessageV2 header and the BurnMessageV2 body (pure).

The layout is Circle's (``reference/rebalancing.md`` §10.1): packed big-endian fields,
addresses as left-padded bytes32. The source chain writes zeros into four fields (the
nonce, ``finalityThresholdExecuted``, ``feeExecuted``, ``expirationBlock``) that the
attester fills in, so only the *attested* message (from Iris) can be received. The nonce
is an opaque 32-byte value kept as a 0x-hex string: it is never squeezed into an int.
Bytes32 fields are kept as 0x-hex strings too, so decoding then encoding gives back the
very same bytes; the ``*_address`` properties read the address in the low 20 bytes.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import attrs

HEADER_LENGTH = 148
"""Bytes before the message body (``MESSAGE_BODY_INDEX``)."""
BURN_BODY_LENGTH = 228
"""Bytes of a burn body before its hook data (``HOOK_DATA_INDEX``)."""
MESSAGE_VERSION = 1
BURN_MESSAGE_VERSION = 1
FINALITY_FAST = 1000
FINALITY_STANDARD = 2000
MIN_FINALITY_UNFINALIZED = 500
ZERO32 = "0x" + "00" * 32
UINT32_MAX = 2**32 - 1
UINT256_MAX = 2**256 - 1


class CctpError(Exception):
    """Base of the CCTP errors."""


class CctpMessageError(CctpError, ValueError):
    """Bytes that are not a CCTP V2 burn message, or a field out of range."""


class AmountTooSmall(CctpError, ValueError):
    """An amount that the fee cap reaches (or a non-positive one): refused before any burn."""


# -- field helpers --------------------------------------------------------------------


def _hex32(value: Any) -> str:
    """A 0x-hex bytes32 in lower case (also takes bytes or a 20-byte address)."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise CctpMessageError(f"not hex: {value!r:.80}") from None
    else:
        raise CctpMessageError(f"expected hex or bytes, got {type(value).__name__}")
    if len(raw) == 20:
        raw = b"\x00" * 12 + raw
    if len(raw) != 32:
        raise CctpMessageError(f"expected 32 bytes (or a 20-byte address), got {len(raw)}")
    return "0x" + raw.hex()


def to_bytes32(value: str | bytes) -> str:
    """An address or a bytes32 as a 0x-hex bytes32 (addresses left-padded with zeros)."""
    return _hex32(value)


def bytes32_to_address(value: str) -> str:
    """The address in the low 20 bytes of a bytes32 (lower-case 0x-hex), as Circle truncates."""
    return "0x" + _hex32(value)[-40:]


def _uint(bits: int, name: str) -> Any:
    top = 2**bits - 1

    def check(_: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise CctpMessageError(
                f"{name or attribute.name} must be a uint{bits}, got {value!r:.80}"
            )

    return check


def _b32(_: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or _hex32(value) != value:
        raise CctpMessageError(
            f"{attribute.name} must be a lower-case 0x-hex bytes32, got {value!r:.80}"
        )


def _bytes(_: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bytes):
        raise CctpMessageError(f"{attribute.name} must be bytes, got {type(value).__name__}")


# -- the classes ----------------------------------------------------------------------


@attrs.frozen
class BurnMessage:
    """BurnMessageV2: the body of a ``depositForBurn`` message."""

    version: int = attrs.field(validator=_uint(32, "version"))
    burn_token: str = attrs.field(validator=_b32)
    mint_recipient: str = attrs.field(validator=_b32)
    amount: int = attrs.field(validator=_uint(256, "amount"))
    """The full amount burned on the source (base units); the mint gets amount − fee."""
    message_sender: str = attrs.field(validator=_b32)
    max_fee: int = attrs.field(validator=_uint(256, "max_fee"))
    fee_executed: int = attrs.field(validator=_uint(256, "fee_executed"))
    expiration_block: int = attrs.field(validator=_uint(256, "expiration_block"))
    hook_data: bytes = attrs.field(default=b"", validator=_bytes)

    @property
    def burn_token_address(self) -> str:
        return bytes32_to_address(self.burn_token)

    @property
    def mint_recipient_address(self) -> str:
        return bytes32_to_address(self.mint_recipient)

    @property
    def message_sender_address(self) -> str:
        return bytes32_to_address(self.message_sender)


@attrs.frozen
class CctpMessage:
    """MessageV2 carrying a burn message (the only kind this project sends)."""

    version: int = attrs.field(validator=_uint(32, "version"))
    source_domain: int = attrs.field(validator=_uint(32, "source_domain"))
    destination_domain: int = attrs.field(validator=_uint(32, "destination_domain"))
    nonce: str = attrs.field(validator=_b32)
    """Opaque bytes32 assigned by the attester (all zeros in the source's MessageSent)."""
    sender: str = attrs.field(validator=_b32)
    recipient: str = attrs.field(validator=_b32)
    destination_caller: str = attrs.field(validator=_b32)
    min_finality_threshold: int = attrs.field(validator=_uint(32, "min_finality_threshold"))
    finality_threshold_executed: int = attrs.field(
        validator=_uint(32, "finality_threshold_executed")
    )
    burn: BurnMessage

    @property
    def attested(self) -> bool:
        """Whether the attester's fields are filled in (the source leaves nonce 0)."""
        return self.nonce != ZERO32 and self.finality_threshold_executed != 0


# -- decoding and encoding ------------------------------------------------------------


def _u(data: bytes, start: int, size: int) -> int:
    return int.from_bytes(data[start : start + size], "big")


def _h(data: bytes, start: int) -> str:
    return "0x" + data[start : start + 32].hex()


def decode_burn_message(body: bytes) -> BurnMessage:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise CctpMessageError(f"a burn message is bytes, got {type(body).__name__}")
    body = bytes(body)
    if len(body) < BURN_BODY_LENGTH:
        raise CctpMessageError(
            f"burn message body is {len(body)} bytes, shorter than the {BURN_BODY_LENGTH}-byte minimum"
        )
    return BurnMessage(
        version=_u(body, 0, 4),
        burn_token=_h(body, 4),
        mint_recipient=_h(body, 36),
        amount=_u(body, 68, 32),
        message_sender=_h(body, 100),
        max_fee=_u(body, 132, 32),
        fee_executed=_u(body, 164, 32),
        expiration_block=_u(body, 196, 32),
        hook_data=body[BURN_BODY_LENGTH:],
    )


def decode_message(data: bytes) -> CctpMessage:
    """Decode a MessageV2 with a BurnMessageV2 body; :class:`CctpMessageError` says why not."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CctpMessageError(f"a CCTP message is bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise CctpMessageError(
            f"message is {len(data)} bytes, shorter than the {HEADER_LENGTH}-byte header"
        )
    return CctpMessage(
        version=_u(data, 0, 4),
        source_domain=_u(data, 4, 4),
        destination_domain=_u(data, 8, 4),
        nonce=_h(data, 12),
        sender=_h(data, 44),
        recipient=_h(data, 76),
        destination_caller=_h(data, 108),
        min_finality_threshold=_u(data, 140, 4),
        finality_threshold_executed=_u(data, 144, 4),
        burn=decode_burn_message(data[HEADER_LENGTH:]),
    )


def encode_burn_message(burn: BurnMessage) -> bytes:
    return b"".join(
        [
            burn.version.to_bytes(4, "big"),
            bytes.fromhex(burn.burn_token[2:]),
            bytes.fromhex(burn.mint_recipient[2:]),
            burn.amount.to_bytes(32, "big"),
            bytes.fromhex(burn.message_sender[2:]),
            burn.max_fee.to_bytes(32, "big"),
            burn.fee_executed.to_bytes(32, "big"),
            burn.expiration_block.to_bytes(32, "big"),
            burn.hook_data,
        ]
    )


def encode_message(message: CctpMessage) -> bytes:
    """The packed bytes (what the attester signs and ``receiveMessage`` takes)."""
    return b"".join(
        [
            message.version.to_bytes(4, "big"),
            message.source_domain.to_bytes(4, "big"),
            message.destination_domain.to_bytes(4, "big"),
            bytes.fromhex(message.nonce[2:]),
            bytes.fromhex(message.sender[2:]),
            bytes.fromhex(message.recipient[2:]),
            bytes.fromhex(message.destination_caller[2:]),
            message.min_finality_threshold.to_bytes(4, "big"),
            message.finality_threshold_executed.to_bytes(4, "big"),
            encode_burn_message(message.burn),
        ]
    )


def nonce_of(data: bytes) -> str:
    """The nonce (bytes 12..44) of a message, as 0x-hex; the header alone is checked."""
    if not isinstance(data, bytes | bytearray) or len(data) < HEADER_LENGTH:
        raise CctpMessageError("not a CCTP message: shorter than the 148-byte header")
    return _h(bytes(data), 12)


def attest(
    message: CctpMessage,
    *,
    nonce: str,
    finality_threshold_executed: int,
    fee_executed: int,
    expiration_block: int,
) -> CctpMessage:
    """The message with the four attester fields filled in (what Iris signs)."""
    return attrs.evolve(
        message,
        nonce=_hex32(nonce),
        finality_threshold_executed=finality_threshold_executed,
        burn=attrs.evolve(
            message.burn, fee_executed=fee_executed, expiration_block=expiration_block
        ),
    )


# -- fees and amounts -----------------------------------------------------------------


def max_fee_units(amount_units: int, minimum_fee_bps: Decimal) -> int:
    """``ceil(amount × bps / 10000)`` exactly (bps may be fractional, e.g. 1.3)."""
    if not isinstance(amount_units, int) or isinstance(amount_units, bool) or amount_units < 0:
        raise AmountTooSmall(
            f"amount must be a non-negative integer of base units, got {amount_units!r}"
        )
    try:
        bps = Fraction(Decimal(minimum_fee_bps))
    except (InvalidOperation, ValueError, TypeError, OverflowError):
        raise CctpError(
            f"fee must be a finite number of basis points, got {minimum_fee_bps!r}"
        ) from None
    if bps < 0:
        raise CctpError(f"fee must not be negative, got {minimum_fee_bps} bps")
    fee = amount_units * bps / 10_000
    return -((-fee.numerator) // fee.denominator)


def check_amount(amount_units: int, max_fee_units: int) -> None:
    """Refuse what ``depositForBurn`` would (``maxFee < amount``) before anything is sent."""
    if not isinstance(amount_units, int) or amount_units <= 0:
        raise AmountTooSmall(
            f"amount must be a positive number of base units, got {amount_units!r}"
        )
    if amount_units > UINT256_MAX:
        raise AmountTooSmall(f"amount {amount_units} does not fit a uint256")
    if max_fee_units >= amount_units:
        raise AmountTooSmall(
            f"amount {amount_units} units is not above the CCTP fee cap {max_fee_units} units"
        )


def attestation_expired(expiration_block: int, destination_block: int, margin: int = 1) -> bool:
    """Whether a mint sent now would revert "Message expired and must be re-signed".

    The contract needs ``expirationBlock > block.number`` of the block the relay lands in,
    at least ``destination_block + 1``; ``margin`` is how many blocks ahead to allow for.
    ``expirationBlock`` 0 never expires.
    """
    return expiration_block != 0 and expiration_block <= destination_block + margin

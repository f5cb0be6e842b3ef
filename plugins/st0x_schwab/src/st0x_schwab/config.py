"""The ``[broker]`` table for ``type = "schwab"``.

Every key can also come from the environment as ``ST0X_BROKER_<KEY>`` (upper
case), which is the recommended place for ``app_secret`` and ``encryption_key``.
"""

from __future__ import annotations

import re

import attrs

from st0x_liquidity import Secret
from st0x_liquidity.validators import http_url, non_negative, positive

_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def _key_bytes(text: str) -> bytes:
    return bytes.fromhex(text.strip().removeprefix("0x").removeprefix("0X"))


def _check_encryption_key(_i: object, _a: object, value: Secret) -> None:
    # The messages name the key, never its value.
    text = value.get().strip()
    if not _HEX_KEY.match(text):
        raise ValueError(
            "encryption_key must be 32 bytes written as 64 hex characters "
            "(make one with: openssl rand -hex 32)"
        )
    if not any(_key_bytes(text)):
        raise ValueError("encryption_key must not be all zeros")


@attrs.frozen
class SchwabConfig:
    """Schwab app credentials, account selection and tuning.

    ``account_number`` picks the account by its plain number; without it the
    account at ``account_index`` of Schwab's ``accountNumbers`` list is used.
    Durations are seconds.
    """

    app_key: str
    app_secret: Secret
    encryption_key: Secret = attrs.field(validator=_check_encryption_key)
    redirect_uri: str = attrs.field(default="https://127.0.0.1", validator=http_url)
    account_number: str | None = None
    account_index: int = attrs.field(default=0, validator=non_negative)
    base_url: str = attrs.field(default="https://api.schwabapi.com", validator=http_url)
    request_timeout: float = attrs.field(default=30.0, validator=positive)
    max_retries: int = attrs.field(default=3, validator=non_negative)
    retry_backoff: float = attrs.field(default=1.0, validator=positive)
    requests_per_minute: int = attrs.field(default=120, validator=positive)
    refresh_margin: float = attrs.field(default=300.0, validator=positive)
    maintenance_interval: float = attrs.field(default=60.0, validator=positive)
    refresh_warning: float = attrs.field(default=86400.0, validator=positive)
    recovery_clock_skew: float = attrs.field(default=300.0, validator=positive)
    recovery_lookback: float = attrs.field(default=86400.0, validator=positive)

    def key_bytes(self) -> bytes:
        return _key_bytes(self.encryption_key.get())

    @property
    def api_root(self) -> str:
        return self.base_url.rstrip("/")

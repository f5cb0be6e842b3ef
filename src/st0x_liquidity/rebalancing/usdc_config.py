"""The ``[rebalancing.cctp]`` table: moving USDC between the broker and the Base vault.

Absent, the bot records USDC decisions without acting on them (as before).
Present, every key is checked when the config is loaded, each with one error
naming it. Defaults are Circle's mainnet values (reference rebalancing.md §8):
CCTP V2 contracts have the same address on every chain.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import attrs

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{1,64}$")

ETHEREUM_USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
TOKEN_MESSENGER_V2 = "0x28b5a0e9C621a5BadaA536219b3a228C8168cf5d"
MESSAGE_TRANSMITTER_V2 = "0x81D40F21F12A8F0E3252Bccb954D722d4c464B64"
FAST_FINALITY = 1000
USDC_DECIMALS = 6


def _address(_i: object, attr: attrs.Attribute[str], value: str) -> None:
    if not _ADDRESS.match(value):
        raise ValueError(f"{attr.name} must be a 0x-prefixed 20-byte address")


def _vault_id(_i: object, attr: attrs.Attribute[str], value: str) -> None:
    if not _BYTES32.match(value):
        raise ValueError(f"{attr.name} must be 0x followed by 1 to 64 hex digits")


def _positive(_i: object, attr: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise ValueError(f"{attr.name} must be positive")


def _at_least_one(_i: object, attr: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attr.name} must be at least 1")


def _domain(_i: object, attr: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value < 2**32:
        raise ValueError(f"{attr.name} must be a uint32 CCTP domain")


def _http_url(_i: object, attr: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{attr.name} must be an http(s) URL, got {value!r}")


def _usdc_amount(_i: object, attr: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not value >= 0 or value != value.quantize(Decimal(1).scaleb(-USDC_DECIMALS)):
        raise ValueError(f"{attr.name} must be a non-negative USDC amount (6 decimals)")


def _bps(_i: object, attr: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not Decimal(0) <= value < Decimal(10000):
        raise ValueError(f"{attr.name} must be basis points between 0 and 10000")


def _finality(_i: object, attr: attrs.Attribute[int], value: int) -> None:
    if value not in (1000, 2000):
        raise ValueError(f"{attr.name} must be 1000 (fast) or 2000 (standard)")


@attrs.frozen
class CctpConfig:
    """See docs/rebalancing.md "USDC over CCTP" for each key."""

    ethereum_rpc_url: str = attrs.field(validator=_http_url)
    usdc_vault_id: str = attrs.field(validator=_vault_id)
    ethereum_chain_id: int = attrs.field(default=1, validator=_at_least_one)
    ethereum_confirmations: int = attrs.field(default=3, validator=_at_least_one)
    ethereum_usdc: str = attrs.field(default=ETHEREUM_USDC, validator=_address)
    base_usdc: str = attrs.field(default=BASE_USDC, validator=_address)
    ethereum_token_messenger: str = attrs.field(default=TOKEN_MESSENGER_V2, validator=_address)
    ethereum_message_transmitter: str = attrs.field(
        default=MESSAGE_TRANSMITTER_V2, validator=_address
    )
    base_token_messenger: str = attrs.field(default=TOKEN_MESSENGER_V2, validator=_address)
    base_message_transmitter: str = attrs.field(default=MESSAGE_TRANSMITTER_V2, validator=_address)
    ethereum_domain: int = attrs.field(default=0, validator=_domain)
    base_domain: int = attrs.field(default=6, validator=_domain)
    iris_url: str = attrs.field(default="https://iris-api.circle.com", validator=_http_url)
    min_withdrawal: Decimal = attrs.field(default=Decimal(50), validator=_usdc_amount)
    """The broker's smallest USDC withdrawal; smaller USDC-to-onchain moves are refused."""
    max_fee_bps: Decimal = attrs.field(default=Decimal(5), validator=_bps)
    """Ceiling on Circle's fast-transfer fee: a higher quoted fee refuses the burn."""
    finality_threshold: int = attrs.field(default=FAST_FINALITY, validator=_finality)
    attestation_interval: float = attrs.field(default=5.0, validator=_positive)
    attestation_deadline: float = attrs.field(default=1800.0, validator=_positive)
    fast_window: float = attrs.field(default=300.0, validator=_positive)
    """After this long without an attestation a warning says the transfer is slow."""
    conversion_interval: float = attrs.field(default=0.5, validator=_positive)
    conversion_timeout: float = attrs.field(default=300.0, validator=_positive)
    transfer_interval: float = attrs.field(default=10.0, validator=_positive)
    transfer_timeout: float = attrs.field(default=1800.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.ethereum_domain == self.base_domain:
            raise ValueError("base_domain must differ from ethereum_domain")

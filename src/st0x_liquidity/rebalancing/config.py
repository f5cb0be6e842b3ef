"""The ``[rebalancing]`` config section."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import attrs

from .inventory import USDC
from .triggers import AssetRules, Band
from .usdc_config import CctpConfig

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{1,64}$")


def _address_or_empty(_i: object, attr: attrs.Attribute[str], value: str) -> None:
    if value and not _ADDRESS.match(value):
        raise ValueError(f"{attr.name} must be a 0x-prefixed 20-byte address")


def _vault_id(_i: object, attr: attrs.Attribute[str], value: str) -> None:
    if not _BYTES32.match(value):
        raise ValueError(f"{attr.name} must be 0x followed by at most 64 hex digits")


def _non_negative(_i: object, attr: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attr.name} must not be negative")


@attrs.frozen
class BandConfig:
    target: Decimal
    deviation: Decimal

    def __attrs_post_init__(self) -> None:
        Band(self.target, self.deviation)  # validates both


@attrs.frozen
class SymbolOverride:
    target: Decimal | None = None
    deviation: Decimal | None = None
    min_shares: Decimal | None = None


@attrs.frozen
class VaultPin:
    """Where an asset lives onchain: its token and the owner's vault id."""

    token: str = attrs.field(validator=_address_or_empty)
    vault_id: str = attrs.field(validator=_vault_id)


@attrs.frozen
class RebalancingConfig:
    """``[rebalancing]``: see docs/rebalancing.md for every key."""

    enabled: bool = True
    dry_run: bool = False
    snapshot_interval: float = attrs.field(default=60.0, validator=_non_negative)
    cooldown: float = attrs.field(default=600.0, validator=_non_negative)
    equity: BandConfig = BandConfig(Decimal("0.5"), Decimal("0.2"))
    usdc: BandConfig = BandConfig(Decimal("0.5"), Decimal("0.3"))
    min_shares: Decimal = Decimal(1)
    min_usdc: Decimal = Decimal(51)
    quantity_places: int = 9
    symbols: dict[str, SymbolOverride] = attrs.field(factory=dict)
    vaults: dict[str, VaultPin] = attrs.field(factory=dict)
    rpc_url: str = ""
    orderbook: str = attrs.field(default="", validator=_address_or_empty)
    chain_id: int = 8453
    confirmations: int = 1
    wallet: str = attrs.field(default="", validator=_address_or_empty)
    redemption_wallet: str = attrs.field(default="", validator=_address_or_empty)
    issuer: str = "st0x"
    network: str = "base"
    private_key_env: str = "ST0X_REBALANCING_PRIVATE_KEY"
    keystore: str = ""
    keystore_password_env: str = "ST0X_REBALANCING_KEYSTORE_PASSWORD"
    poll_interval: float = attrs.field(default=10.0, validator=_non_negative)
    poll_timeout: float = attrs.field(default=1800.0, validator=_non_negative)
    cctp: CctpConfig | None = None
    """``[rebalancing.cctp]``: USDC moves between the broker and the Base vault."""

    def rules(self, asset: str) -> AssetRules:
        cooldown = timedelta(seconds=self.cooldown)
        if asset == USDC:
            band = Band(self.usdc.target, self.usdc.deviation)
            return AssetRules(band, self.min_usdc, cooldown, min(self.quantity_places, 6))
        override = self.symbols.get(asset) or SymbolOverride()
        band = Band(
            override.target if override.target is not None else self.equity.target,
            override.deviation if override.deviation is not None else self.equity.deviation,
        )
        minimum = override.min_shares if override.min_shares is not None else self.min_shares
        return AssetRules(band, minimum, cooldown, self.quantity_places)

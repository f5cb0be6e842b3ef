"""When to rebalance, and by how much (pure; property-tested).

The onchain share of an asset is ``onchain total / (onchain + offchain total)``.
Outside ``target ± deviation`` (strict comparisons) the operation that brings
it back to ``target`` is proposed; inside, nothing. Never while the asset has
an operation, an amount or a hedge order in flight, never within the cooldown after the last
operation ended, never below the minimum, never more than the source venue has
available.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from ..domain.numbers import EXACT, ZERO, round_down
from .inventory import USDC, AssetInventory


def _fraction(_i: object, attr: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not (ZERO <= value <= 1):
        raise ValueError(f"{attr.name} must be between 0 and 1, got {value}")


@attrs.frozen
class Band:
    target: Decimal = attrs.field(validator=_fraction)
    deviation: Decimal = attrs.field(validator=_fraction)

    @property
    def lower(self) -> Decimal:
        return self.target - self.deviation

    @property
    def upper(self) -> Decimal:
        return self.target + self.deviation


@attrs.frozen
class AssetRules:
    band: Band
    minimum: Decimal
    cooldown: timedelta
    places: int = 9


class Action(enum.Enum):
    MINT = "mint"  # too many shares offchain: mint tokens, deposit them
    REDEEM = "redeem"  # too many tokens onchain: withdraw, redeem for shares
    USDC_TO_ONCHAIN = "usdc-to-onchain"  # executed by a later issue (CCTP)
    USDC_TO_OFFCHAIN = "usdc-to-offchain"


@attrs.frozen
class Decision:
    asset: str
    action: Action | None
    quantity: Decimal
    onchain_share: Decimal | None
    reason: str


def decide(inv: AssetInventory, rules: AssetRules, now: datetime) -> Decision:
    share = inv.onchain_share

    def nothing(reason: str) -> Decision:
        return Decision(inv.asset, None, ZERO, share, reason)

    if inv.active_operation is not None:
        return nothing(f"operation {inv.active_operation} in flight")
    if inv.has_inflight:
        return nothing("an amount is in flight")
    if inv.hedge_pending:
        return nothing("a hedge order is in flight")
    if inv.last_operation_end is not None and now - inv.last_operation_end < rules.cooldown:
        return nothing("cooling down after the last operation")
    if share is None:
        return nothing("no inventory")
    band = rules.band
    target_onchain = EXACT.multiply(inv.total, band.target)
    is_usdc = inv.asset == USDC
    if share < band.lower:
        action = Action.USDC_TO_ONCHAIN if is_usdc else Action.MINT
        wanted = EXACT.subtract(target_onchain, inv.onchain.total)
        source = inv.offchain.available
    elif share > band.upper:
        action = Action.USDC_TO_OFFCHAIN if is_usdc else Action.REDEEM
        wanted = EXACT.subtract(inv.onchain.total, target_onchain)
        source = inv.onchain.available
    else:
        return nothing("inside the band")
    quantity = round_down(min(wanted, source), rules.places)
    if quantity <= ZERO or quantity < rules.minimum:
        return Decision(inv.asset, None, quantity, share, f"{action.value} below the minimum")
    return Decision(inv.asset, action, quantity, share, "outside the band")

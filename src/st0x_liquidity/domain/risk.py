"""Pre-trade risk checks: may this hedge go out, given the limits and the trading state?

Pure: the engine gives :func:`check_hedge` the hedge it decided, the symbol's
limits and trading state, the broker position the books know (starting holding
plus filled hedges) and the notional the symbol already hedged today; it answers
*allowed* or *blocked* with the limit and a sentence saying why. A blocked hedge
is not placed and reserves nothing: its shares stay open in the book, and the
same decision is checked again when something changes (a new fill, a state
change, a new day, a restart with other limits).
"""

from __future__ import annotations

import enum
from decimal import Decimal

import attrs

from .accumulator import HedgeDecision
from .fills import Direction
from .numbers import ZERO, add, fmt, mul, sub


class TradingState(enum.Enum):
    """What an operator (or reconciliation) allows a symbol's hedging to do.

    ACTIVE: hedge within the limits. REDUCING: only orders that shrink the
    broker position towards zero (without crossing it). HALTED: no orders.
    """

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


@attrs.frozen
class RiskLimits:
    """One symbol's limits; quantities in shares, notionals in USD at the reference price."""

    max_order_quantity: Decimal
    max_order_notional: Decimal
    max_net_exposure: Decimal
    """Largest broker position (absolute, in USD at the order's price) an order may build."""
    max_daily_notional: Decimal
    """Largest notional of hedges filled in one UTC day, this order included."""


@attrs.frozen
class RiskVerdict:
    allowed: bool
    limit: str | None = None
    """``state`` or the name of the limit that blocked the hedge."""
    reason: str | None = None


ALLOWED = RiskVerdict(True)


def signed(side: Direction, quantity: Decimal) -> Decimal:
    """A broker order's effect on the broker position (a BUY adds, a SELL takes away)."""
    return quantity if side is Direction.BUY else quantity.copy_negate()


def reduces(position: Decimal, change: Decimal) -> bool:
    """True if ``change`` moves ``position`` towards zero without crossing it."""
    after = add(position, change)
    if position.is_zero() or change.is_zero():
        return False
    same_side = after.is_zero() or (after > ZERO) == (position > ZERO)
    return same_side and after.copy_abs() < position.copy_abs()


def check_hedge(
    decision: HedgeDecision,
    price: Decimal,
    *,
    limits: RiskLimits,
    state: TradingState,
    position: Decimal,
    hedged_today: Decimal,
    state_reason: str | None = None,
) -> RiskVerdict:
    """Allowed, or blocked with the first limit the hedge breaks (in the order below).

    ``position`` is the broker position the books know (signed shares);
    ``hedged_today`` the USD notional of hedges filled today (UTC).
    """
    qty = decision.quantity
    notional = mul(qty, price)
    change = signed(decision.side, qty)
    why = f" ({state_reason})" if state_reason else ""
    if state is TradingState.HALTED:
        return RiskVerdict(False, "state", f"trading state is halted{why}")
    if state is TradingState.REDUCING and not reduces(position, change):
        return RiskVerdict(
            False,
            "state",
            f"trading state is reducing{why}: {decision.side.value} {fmt(qty)} would not "
            f"shrink the broker position of {fmt(position)}",
        )
    if qty > limits.max_order_quantity:
        return RiskVerdict(
            False,
            "max_order_quantity",
            f"order of {fmt(qty)} shares is above max_order_quantity "
            f"{fmt(limits.max_order_quantity)}",
        )
    if notional > limits.max_order_notional:
        return RiskVerdict(
            False,
            "max_order_notional",
            f"order notional ${fmt(notional)} is above max_order_notional "
            f"${fmt(limits.max_order_notional)}",
        )
    after = add(position, change)
    exposure = mul(after.copy_abs(), price)
    if exposure > limits.max_net_exposure and after.copy_abs() > position.copy_abs():
        return RiskVerdict(
            False,
            "max_net_exposure",
            f"broker position would be {fmt(after)} shares (${fmt(exposure)}), above "
            f"max_net_exposure ${fmt(limits.max_net_exposure)}",
        )
    total = add(hedged_today, notional)
    if total > limits.max_daily_notional:
        left = max(sub(limits.max_daily_notional, hedged_today), ZERO)
        return RiskVerdict(
            False,
            "max_daily_notional",
            f"order notional ${fmt(notional)} is above what max_daily_notional "
            f"${fmt(limits.max_daily_notional)} leaves today (${fmt(left)})",
        )
    return ALLOWED

"""How an extended-hours limit is priced (pure): reference, offset, close-flatten, loss bound.

The engine gathers the inputs (the Pyth price the fill's transaction read, the
fill's own price, the broker's mark, the session windows) and these functions
decide; docs/extended-hours.md describes the chain and the settings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from .fills import Direction
from .numbers import ZERO
from .sessions import SessionWindow, offset_limit

BPS = Decimal(10_000)

FLATTEN_GAP = timedelta(hours=12)
"""A close followed by no enabled session for longer than this is a weekend or
holiday close (an ordinary weeknight gap is 8 hours: 20:00 to 04:00)."""


@attrs.frozen
class Reference:
    price: Decimal
    source: str
    """``pyth``, ``onchain`` or ``broker_mark``."""


def choose_reference(
    pyth: Decimal | None, onchain: Decimal | None, mark: Decimal | None
) -> Reference | None:
    """The first usable price of the chain: Pyth, then the onchain fill, then the broker mark."""
    for price, source in ((pyth, "pyth"), (onchain, "onchain"), (mark, "broker_mark")):
        if price is not None and price.is_finite() and price > ZERO:
            return Reference(price, source)
    return None


def flatten_close(current: SessionWindow, following: SessionWindow | None) -> datetime | None:
    """The close ``current`` ends at if it is followed by a weekend or holiday, else None.

    No known next session (the calendar ends) counts as a weekend: better to
    flatten once too often than to leave a position over a long close.
    """
    if following is None or following.start - current.end > FLATTEN_GAP:
        return current.end
    return None


def flatten_progress(now: datetime, close: datetime | None, window: float) -> float | None:
    """Where ``now`` is in the close-flatten window before ``close``: 0 at its start, 1 at
    the close; None outside it (or with no window)."""
    if close is None or window <= 0:
        return None
    left = (close - now).total_seconds()
    if left > window or left < 0:
        return None
    return min(1.0, max(0.0, 1 - left / window))


def ramped_offset(base: Decimal, maximum: Decimal, progress: float | None) -> Decimal:
    """The offset at ``progress`` through the close-flatten window: linear from base to max.

    The window only ever widens: a symbol whose own offset is above the section's
    maximum keeps its offset, and the offset never falls below ``base``.
    """
    if progress is None or maximum <= base:
        return base
    step = (maximum - base) * Decimal(str(round(progress, 6)))
    ramped = (base + step).quantize(Decimal("0.01"))  # to 1/100 bp
    return min(maximum, max(base, ramped))


def loss_bps(limit: Decimal, onchain: Decimal, side: Direction) -> Decimal:
    """Basis points the hedge at ``limit`` locks in against the onchain fill price.

    A SELL hedge covers shares bought onchain at ``onchain``: selling lower
    loses. A BUY hedge covers shares sold onchain: buying higher loses.
    Negative means a gain.
    """
    if side is Direction.SELL:
        return (onchain - limit) / onchain * BPS
    return (limit - onchain) / onchain * BPS


@attrs.frozen
class LimitPrice:
    """A priced limit, or why it may not be placed (``blocked``)."""

    limit: Decimal
    reference: Reference
    offset_bps: Decimal
    loss_bps: Decimal | None
    blocked: str | None = None


def price_limit(
    reference: Reference,
    side: Direction,
    offset: Decimal,
    *,
    onchain: Decimal | None,
    max_loss_bps: Decimal,
) -> LimitPrice:
    """The limit for ``reference`` moved ``offset`` bps towards crossing, checked against
    the loss bound (no onchain price: nothing to bound against)."""
    limit = offset_limit(reference.price, side, offset)
    loss = None if onchain is None else loss_bps(limit, onchain, side)
    blocked = None
    if loss is not None and loss > max_loss_bps:
        blocked = (
            f"limit {limit} ({reference.source} {reference.price} {side.value.lower()} "
            f"{offset} bps) would lose {loss.quantize(Decimal('0.1'))} bps against the onchain "
            f"fill at {onchain}; the bound is {max_loss_bps} bps"
        )
    return LimitPrice(limit, reference, offset, loss, blocked)

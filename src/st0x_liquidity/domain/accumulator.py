"""The per-symbol FIFO accumulator: open lots, netting, hedge reservations.

Every share of every fill is, at any moment, exactly one of:

* **open** – part of the unhedged exposure, in a lot;
* **netted** – cancelled against an opposite fill (both fills record it);
* **reserved** – promised to the one in-flight hedge order, not filled yet;
* **hedged** – covered by a filled part of a hedge order.

Lots are kept oldest first and are all of one direction (an opposite fill nets
against them before it may open a lot of its own), so ``net`` is the signed sum
of open and reserved quantities. Each method returns the allocations it made;
the engine writes those into events, which is how the audit trail can say which
hedge covered which fill without recomputing anything.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

import attrs

from .fills import Direction, Fill, TradeId
from .numbers import ZERO, add, mul, round_down, sub
from .orders import OrderRules
from .symbols import Symbol


class AccumulatorError(Exception):
    """A command that does not fit the book's state (a bug or a corrupt store)."""


@attrs.frozen
class Allocation:
    """``quantity`` shares of fill ``trade_id``."""

    trade_id: TradeId
    quantity: Decimal


@attrs.frozen
class Netting:
    """``quantity`` shares of ``older`` cancelled against the same of ``newer``."""

    older: TradeId
    newer: TradeId
    quantity: Decimal




@attrs.define
class Lot:
    """The still-open part of one fill."""

    trade_id: TradeId
    direction: Direction
    open: Decimal


@attrs.define
class InFlightHedge:
    """The one hedge order a symbol may have outstanding."""

    client_order_id: str
    side: Direction
    quantity: Decimal
    reserved: deque[Allocation]
    filled: Decimal = ZERO

    @property
    def exposure_direction(self) -> Direction:
        """Direction of the fills this hedge covers (a SELL hedge covers BUY fills)."""
        return self.side.opposite

    @property
    def unfilled(self) -> Decimal:
        return sub(self.quantity, self.filled)


@attrs.frozen
class HedgeDecision:
    side: Direction
    quantity: Decimal


@attrs.frozen
class Settlement:
    """What finishing (or progressing) a hedge did to the fills."""

    hedged: tuple[Allocation, ...] = ()
    released: tuple[Allocation, ...] = ()
    nettings: tuple[Netting, ...] = ()


def decide_hedge(
    open_net: Decimal, last_price: Decimal | None, rules: OrderRules
) -> HedgeDecision | None:
    """The hedge to place for ``open_net`` unhedged shares, or None if below threshold.

    Long exposure is hedged by selling, short by buying. The quantity never
    exceeds ``|open_net|``: it is rounded down to the executor's grid.
    """
    if open_net.is_zero():
        return None
    side = Direction.SELL if open_net > ZERO else Direction.BUY
    size = open_net.copy_abs()  # abs() would round to the default 28 digits
    if not rules.fractional:
        quantity = round_down(size, 0)
        if quantity < max(rules.min_quantity, Decimal(1)):
            return None
        if rules.min_notional > ZERO and (
            last_price is None or mul(quantity, last_price) < rules.min_notional
        ):
            return None
        return HedgeDecision(side, quantity)
    quantity = round_down(size, rules.quantity_decimals)
    if quantity.is_zero() or quantity < rules.min_quantity:
        return None
    if last_price is None:
        return None
    if mul(quantity, last_price) < rules.min_notional:
        return None
    return HedgeDecision(side, quantity)


@attrs.define
class SymbolBook:
    """Mutable state of one symbol, changed only through the methods below."""

    symbol: Symbol
    lots: deque[Lot] = attrs.field(factory=deque)
    in_flight: InFlightHedge | None = None
    last_price: Decimal | None = None
    hedges_placed: int = 0

    # -- reading -----------------------------------------------------------------

    @property
    def open_net(self) -> Decimal:
        total = ZERO
        for lot in self.lots:
            total = add(
                total, lot.open if lot.direction is Direction.BUY else lot.open.copy_negate()
            )
        return total

    @property
    def reserved_net(self) -> Decimal:
        if self.in_flight is None:
            return ZERO
        unfilled = self.in_flight.unfilled
        return unfilled if self.in_flight.exposure_direction is Direction.BUY else -unfilled

    @property
    def net(self) -> Decimal:
        """Signed exposure not yet covered by filled hedges."""
        return add(self.open_net, self.reserved_net)

    def decide(self, rules: OrderRules) -> HedgeDecision | None:
        if self.in_flight is not None:
            return None
        return decide_hedge(self.open_net, self.last_price, rules)

    # -- fills -------------------------------------------------------------------

    def apply_fill(self, fill: Fill) -> tuple[Netting, ...]:
        """Net ``fill`` against the oldest opposite lots; any remainder opens a lot."""
        if fill.symbol.ticker != self.symbol.ticker:
            raise AccumulatorError(f"fill for {fill.symbol} applied to book {self.symbol}")
        self.last_price = fill.price
        remaining, nettings = self._net_against_lots(fill.trade_id, fill.direction, fill.amount)
        if remaining > ZERO:
            self.lots.append(Lot(fill.trade_id, fill.direction, remaining))
        return nettings

    def _net_against_lots(
        self, trade_id: TradeId, direction: Direction, quantity: Decimal
    ) -> tuple[Decimal, tuple[Netting, ...]]:
        nettings: list[Netting] = []
        lots = self.lots
        remaining = quantity
        while remaining > ZERO and lots and lots[0].direction is not direction:
            lot = lots[0]
            if lot.open <= remaining:  # the lot closes
                take = lot.open
                lots.popleft()
                lot.open = ZERO
            else:
                take = remaining
                lot.open = sub(lot.open, take)
            nettings.append(Netting(lot.trade_id, trade_id, take))
            remaining = sub(remaining, take)
        return remaining, tuple(nettings)

    # -- hedges ------------------------------------------------------------------

    def reserve(self, decision: HedgeDecision, client_order_id: str) -> tuple[Allocation, ...]:
        """Promise the oldest open shares to a new hedge order."""
        if self.in_flight is not None:
            raise AccumulatorError(
                f"{self.symbol}: hedge {self.in_flight.client_order_id} is still in flight"
            )
        exposure = decision.side.opposite
        reserved: deque[Allocation] = deque()
        remaining = decision.quantity
        while remaining > ZERO:
            if not self.lots or self.lots[0].direction is not exposure:
                raise AccumulatorError(
                    f"{self.symbol}: not enough open {exposure.value} shares for {decision}"
                )
            lot = self.lots[0]
            take = min(lot.open, remaining)
            reserved.append(Allocation(lot.trade_id, take))
            lot.open = sub(lot.open, take)
            remaining = sub(remaining, take)
            if lot.open.is_zero():
                self.lots.popleft()
        self.in_flight = InFlightHedge(client_order_id, decision.side, decision.quantity, reserved)
        self.hedges_placed += 1
        return tuple(reserved)

    def progress(self, client_order_id: str, filled_total: Decimal) -> Settlement:
        """Mark the oldest reserved shares hedged up to a cumulative ``filled_total``."""
        hedge = self._hedge(client_order_id)
        target = min(filled_total, hedge.quantity)
        delta = sub(target, hedge.filled)
        if delta <= ZERO:
            return Settlement()
        hedged: list[Allocation] = []
        while delta > ZERO:
            head = hedge.reserved[0]
            take = min(head.quantity, delta)
            hedged.append(Allocation(head.trade_id, take))
            left = sub(head.quantity, take)
            if left.is_zero():
                hedge.reserved.popleft()
            else:
                hedge.reserved[0] = Allocation(head.trade_id, left)
            delta = sub(delta, take)
        hedge.filled = target
        return Settlement(hedged=tuple(hedged))

    def finish(self, client_order_id: str, filled_total: Decimal) -> Settlement:
        """Close the in-flight hedge: hedge what filled, give the rest back to open.

        Returned shares are older than any open lot of their direction, so they go
        back at the front; if opposite lots opened meanwhile, they net first.
        """
        progressed = self.progress(client_order_id, filled_total)
        hedge = self._hedge(client_order_id)
        released = tuple(hedge.reserved)
        self.in_flight = None
        nettings: list[Netting] = []
        leftovers: list[Lot] = []
        for alloc in released:
            remaining, netted = self._net_against_lots(
                alloc.trade_id, hedge.exposure_direction, alloc.quantity
            )
            nettings.extend(netted)
            if remaining > ZERO:
                leftovers.append(Lot(alloc.trade_id, hedge.exposure_direction, remaining))
        for lot in reversed(leftovers):
            if self.lots and self.lots[0].trade_id == lot.trade_id:
                self.lots[0].open = add(self.lots[0].open, lot.open)
            else:
                self.lots.appendleft(lot)
        return Settlement(hedged=progressed.hedged, released=released, nettings=tuple(nettings))

    def _hedge(self, client_order_id: str) -> InFlightHedge:
        hedge = self.in_flight
        if hedge is None or hedge.client_order_id != client_order_id:
            raise AccumulatorError(f"{self.symbol}: no in-flight hedge {client_order_id}")
        return hedge

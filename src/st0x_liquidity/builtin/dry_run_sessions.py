"""The dry-run broker with trading sessions: extended hours, limit orders, a movable clock.

``[broker] type = "dry-run"`` with ``sessions = true``. A calendar generated
from rules (weekdays; regular 09:30-16:00, extended 04:00-20:00 New York;
``holidays`` closed, ``half_days`` closing at 13:00 with after-hours to 17:00;
overnight 20:00-04:00 when ``overnight`` is on), a clock that starts at
``clock_start`` and runs at ``clock_speed`` (0: frozen; tests move it with
:meth:`SessionClock.set`), and broker rules as Alpaca documents them: market
orders only in regular hours, limits on the sub-penny grid, ``day`` orders
ending at the trade date's after-hours close, an eligibility list.

A limit fills when the symbol's price crosses it (a buy when the price is at
or below the limit, a sell at or above) while a session is open; the price is
the order's reference price unless ``prices`` (or :meth:`set_price`) sets
one. ``limit_partial_fraction`` makes a crossing limit fill only that part
and rest, for partial-fill tests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ..domain.fills import Direction
from ..domain.numbers import ZERO, mul, round_down
from ..domain.orders import (
    HedgeOrder,
    LimitOrder,
    MarketClock,
    MarketOrder,
    OrderState,
    OrderUpdate,
)
from ..domain.sessions import (
    NEW_YORK,
    OVERNIGHT_START,
    Session,
    SessionWindow,
    SymbolEligibility,
    TradingDay,
    at_new_york,
    limit_tick,
    rule_calendar,
    session_at,
    session_windows,
)
from ..domain.symbols import Symbol
from ..errors import FinalBrokerError
from ..store.dry_run_ledger import OPEN, LedgerOrder
from .dry_run_executor import DryRunConfig, DryRunExecutor

ALL_SESSIONS = frozenset(Session) - {Session.CLOSED}


class SessionClock:
    """Simulated time: ``start`` plus real elapsed time times ``speed`` (0: frozen)."""

    def __init__(self, start: datetime | None, speed: float = 1.0) -> None:
        self.speed = speed
        self._anchor = start
        self._real = time.monotonic()

    def now(self) -> datetime:
        if self._anchor is None:
            return datetime.now(UTC)
        elapsed = (time.monotonic() - self._real) * self.speed
        return self._anchor + timedelta(seconds=elapsed)

    def set(self, when: datetime) -> None:
        self._anchor = when.astimezone(UTC)
        self._real = time.monotonic()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + timedelta(seconds=seconds))


class DryRunSessionsExecutor(DryRunExecutor):
    """:class:`DryRunExecutor` plus the :class:`~st0x_liquidity.protocols.ExtendedHoursExecutor` side."""

    def __init__(self, config: DryRunConfig, state_path: Path | str) -> None:
        start = None if config.clock_start is None else datetime.fromisoformat(config.clock_start)
        self.clock = SessionClock(start, config.clock_speed)
        super().__init__(config, state_path, now=self.clock.now)
        self.prices: dict[str, Decimal] = dict(config.prices)
        self.holidays = {date.fromisoformat(d) for d in config.holidays}
        self.half_days = {date.fromisoformat(d) for d in config.half_days}

    def simulated_now(self) -> datetime:
        """The engine judges sessions by this clock (engine/core.py)."""
        return self.clock.now()

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.prices[Symbol(symbol).ticker] = price

    # -- calendar --------------------------------------------------------------------

    def _days(self, start: date, end: date) -> list[TradingDay]:
        return rule_calendar(start, end, holidays=self.holidays, half_days=self.half_days)

    def _windows(self, now: datetime) -> list[SessionWindow]:
        today = now.date()
        days = self._days(today - timedelta(days=7), today + timedelta(days=7))
        return session_windows(days, overnight=self.config.overnight)

    def _session(self, now: datetime) -> SessionWindow:
        return session_at(self._windows(now), now, ALL_SESSIONS)[0]

    async def trading_days(self, start: date, end: date) -> list[TradingDay]:
        return self._days(start, end)

    async def eligibility(self, symbols: Sequence[Symbol]) -> dict[Symbol, SymbolEligibility]:
        extended, overnight = self.config.eligible, self.config.overnight_eligible
        return {
            s: SymbolEligibility(
                extended=extended is None or s.ticker in extended,
                overnight=self.config.overnight and (overnight is None or s.ticker in overnight),
            )
            for s in symbols
        }

    def overnight_available(self) -> bool:
        return self.config.overnight

    async def position_mark(self, symbol: Symbol) -> Decimal | None:
        return self.prices.get(symbol.ticker)

    async def market_clock(self) -> MarketClock:
        now = self.clock.now()
        regular = session_at(self._windows(now), now, frozenset({Session.REGULAR}))
        current, following = regular
        if current.session is Session.REGULAR:
            return MarketClock(
                True,
                next_open=None if following is None else following.start,
                next_close=current.end,
            )
        return MarketClock(
            False,
            next_open=None if following is None else following.start,
            next_close=None if following is None else following.end,
        )

    # -- orders ----------------------------------------------------------------------

    async def place_market_order(self, order: MarketOrder) -> OrderUpdate:
        if self._session(self.clock.now()).session is not Session.REGULAR:
            raise FinalBrokerError(
                "market orders are accepted in regular hours only "
                "(extended hours order must be DAY or GTC limit orders)"
            )
        return await super().place_market_order(order)

    async def place_limit_order(self, order: LimitOrder) -> OrderUpdate:
        self._check(order)
        limit = order.limit_price
        if limit <= ZERO or limit != limit.quantize(limit_tick(limit)):
            raise FinalBrokerError(
                f"invalid limit_price {limit}. sub-penny increment does not fulfill "
                "minimum pricing criteria"
            )
        eligible = (await self.eligibility([order.symbol]))[order.symbol]
        now = self.clock.now()
        window = self._session(now)
        if window.session.extended and not eligible.extended:
            raise FinalBrokerError(f"{order.symbol} is not eligible for extended hours trading")
        if window.session is Session.OVERNIGHT and not eligible.overnight:
            raise FinalBrokerError(f"{order.symbol} is not tradable overnight")
        placed = LedgerOrder(
            uuid.uuid4().hex,
            order.client_order_id,
            str(order.symbol),
            order.side.value,
            order.quantity,
            order.reference_price,
            OPEN,
            ZERO,
            None,
            now,
            self._expiry(now, window),
            limit,
            order.session.value,
        )
        if not await self._record(placed):
            raise FinalBrokerError(f"client_order_id {order.client_order_id} was already used")
        return await self.order_status(placed.broker_order_id)

    def _expiry(self, now: datetime, window: SessionWindow) -> datetime:
        """A ``day`` order ends at its trade date's after-hours close (overnight: the next
        date's, the session belongs to it)."""
        local = now.astimezone(NEW_YORK)
        trade_date = local.date()
        if window.session is Session.OVERNIGHT and local.hour >= OVERNIGHT_START.hour:
            trade_date += timedelta(days=1)
        for day in self._days(trade_date, trade_date + timedelta(days=7)):
            if day.date >= trade_date:
                return day.extended_close or day.regular_close
        return at_new_york(trade_date, OVERNIGHT_START)

    async def order_status(self, broker_order_id: str) -> OrderUpdate:
        found = await self._ask(self.ledger.by_broker_id(broker_order_id))
        if found is None:
            raise FinalBrokerError(f"order {broker_order_id} not found")
        return await self._current(found)

    async def find_order(self, client_order_id: str, order: HedgeOrder) -> OrderUpdate | None:
        found = await self._ask(self.ledger.by_client_id(client_order_id))
        return None if found is None else await self._current(found)

    async def cancel_order(self, broker_order_id: str) -> OrderUpdate:
        found = await self._ask(self.ledger.by_broker_id(broker_order_id))
        if found is None:
            raise FinalBrokerError(f"order {broker_order_id} not found")
        if not found.is_limit:
            return self._update(found)
        found = await self._evaluate(found)
        if found.outcome == OPEN:
            settled = await self._ask(
                self.ledger.settle(
                    found.broker_order_id,
                    "cancelled",
                    found.filled_quantity,
                    found.price,
                    "cancelled on request",
                )
            )
            found = settled or found
        return self._limit_update(found)

    async def _current(self, placed: LedgerOrder) -> OrderUpdate:
        if not placed.is_limit:
            return self._update(placed)
        return self._limit_update(await self._evaluate(placed))

    async def _evaluate(self, placed: LedgerOrder) -> LedgerOrder:
        """Settle what the clock and the price say happened to a resting limit."""
        if placed.outcome != OPEN or placed.limit_price is None:
            return placed
        now = self.clock.now()
        settled: LedgerOrder | None = None
        if now >= placed.done_at:
            settled = await self._ask(
                self.ledger.settle(
                    placed.broker_order_id,
                    "cancelled",
                    placed.filled_quantity,
                    placed.price,
                    "expired: the day order ended",
                )
            )
        elif (
            placed.filled_quantity.is_zero()
            and now >= placed.placed_at + timedelta(seconds=self.config.latency)
            and self._session(now).session is not Session.CLOSED
        ):
            market = self.prices.get(Symbol(placed.symbol).ticker, placed.price)
            buy = placed.side == Direction.BUY.value
            limit = placed.limit_price
            if (market <= limit) if buy else (market >= limit):
                fill_price = min(market, limit) if buy else max(market, limit)
                quantity = placed.quantity
                fraction = self.config.limit_partial_fraction
                if fraction > ZERO:
                    decimals = self._rules.quantity_decimals if self._rules.fractional else 0
                    quantity = round_down(mul(placed.quantity, fraction), decimals)
                    if quantity <= ZERO:
                        quantity = placed.quantity
                outcome = "filled" if quantity >= placed.quantity else OPEN
                settled = await self._ask(
                    self.ledger.settle(placed.broker_order_id, outcome, quantity, fill_price, None)
                )
        return settled or placed

    def _limit_update(self, placed: LedgerOrder) -> OrderUpdate:
        filled = placed.filled_quantity
        if placed.outcome == OPEN:
            state = OrderState.PARTIALLY_FILLED if filled > ZERO else OrderState.SUBMITTED
        else:
            state = {
                "filled": OrderState.FILLED,
                "failed": OrderState.FAILED,
                "cancelled": OrderState.CANCELLED,
            }[placed.outcome]
        return OrderUpdate(
            placed.broker_order_id,
            state,
            filled_quantity=filled,
            average_price=placed.price if filled > ZERO else None,
            reason=placed.reason,
            client_order_id=placed.client_order_id,
        )

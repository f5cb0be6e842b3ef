"""The risk gate: every hedge the books decide is checked against ``[risk]`` first.

It keeps what :func:`~st0x_liquidity.domain.risk.check_hedge` needs and the
books do not: each symbol's trading state (folded from ``trading_state_log``,
which the ``risk`` command, the dashboard and reconciliation append to), the
broker position the books know (starting holding + filled hedges) and the
notional hedged today (UTC). A blocked hedge reserves nothing: it is kept in
``status.blocked`` (dashboard, /metrics, a critical alert) and decided again
when a fill arrives, a state changes, the day turns, or the engine restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ..domain.accumulator import HedgeDecision
from ..domain.events import (
    TRADING_STATE,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    NewEvent,
    TradingStateChanged,
)
from ..domain.fills import Direction
from ..domain.numbers import ZERO, add, fmt, mul
from ..domain.risk import ALLOWED, RiskVerdict, TradingState, check_hedge, signed
from ..errors import StoreError
from ..protocols import HedgeOrderRecord
from ..store.read_models import TradingStateRequest
from ..store.trading_state_log import ALL, TradingStateLog
from .state import EngineContext, log


class RiskGate:
    def __init__(self, engine: EngineContext) -> None:
        self.engine = engine
        self.config = engine.config.risk
        self.log = (
            TradingStateLog(engine.config.database_path)
            if engine.config.postgres is None
            else _NoLogYet()  # the trading state log is not on PostgreSQL yet (docs/store.md)
        )
        self.default = (TradingState.ACTIVE, "")
        self.states: dict[str, tuple[TradingState, str]] = {}
        self.position: dict[str, Decimal] = {
            k: v for k, v in engine.config.reconciliation.starting_positions.items()
        }
        self.hedged: dict[str, Decimal] = {}
        """Σ filled hedge buys − Σ filled hedge sells per symbol (no starting holding)."""
        self.day = _today()
        self.today: dict[str, Decimal] = {}
        self.reference: dict[str, Decimal] = {}
        self.applied = 0
        self._lock = asyncio.Lock()

    # -- start -------------------------------------------------------------------------

    async def load(self, orders: Sequence[HedgeOrderRecord]) -> None:
        """Positions and today's notional from the hedge orders; states from the log."""
        today = _today()
        for o in orders:
            ticker = o.symbol.ticker
            self.reference[o.client_order_id] = o.reference_price
            filled = o.filled_quantity
            if filled.is_zero():
                continue
            self._add_fill(ticker, Direction(o.side), filled)
            if o.updated_at.astimezone(UTC).date() == today:
                price = o.average_price or o.reference_price
                self.today[ticker] = add(self.today.get(ticker, ZERO), mul(filled, price))
        await self.follow(startup=True)

    # -- trading states -------------------------------------------------------------------

    def state_of(self, ticker: str) -> tuple[TradingState, str]:
        return self.states.get(ticker, self.default)

    async def request(
        self, symbol: str, state: TradingState, reason: str, actor: str, remote: str | None
    ) -> TradingStateRequest:
        """Append a change to the log and apply it now (the dashboard, reconciliation)."""
        row = await self.log.append(symbol, state.value, reason, actor, remote)
        await self.follow()
        return row

    async def follow(self, *, startup: bool = False) -> None:
        """Apply the log's rows this engine has not applied yet, in order."""
        async with self._lock:
            rows = await self.log.after(self.applied if not startup else 0)
            if startup:
                reads = getattr(self.engine.store, "reads", None)
                recorded = await reads.last_trading_state_request() if reads is not None else 0
            else:
                recorded = self.applied
            touched: list[str] = []
            events: list[NewEvent] = []
            for row in rows:
                touched.extend(self._apply(row, quiet=row.id <= recorded))
                if row.id > recorded:
                    events.append(
                        NewEvent(
                            TRADING_STATE,
                            row.symbol,
                            TradingStateChanged(
                                row.symbol,
                                TradingState(row.state),
                                row.reason,
                                row.actor,
                                row.id,
                                row.remote,
                            ),
                        )
                    )
                self.applied = row.id
            if events:
                await self.engine.append(events)
            self._publish_states()
        if touched and not startup:
            books = list(self.engine.books)
            self.engine.hedge_symbols(
                books if ALL in touched else [t for t in touched if t in books]
            )

    def _apply(self, row: TradingStateRequest, *, quiet: bool) -> list[str]:
        state = TradingState(row.state)
        if row.symbol == ALL:
            self.default = (state, row.reason)
            self.states.clear()
        else:
            self.states[row.symbol] = (state, row.reason)
        if not quiet:
            who = "every symbol" if row.symbol == ALL else row.symbol
            log.warning(
                "trading state of %s is now %s (%s, by %s)", who, state.value, row.reason, row.actor
            )
        return [row.symbol]

    def _publish_states(self) -> None:
        status = self.engine.status
        status.trading_state = {
            ALL: {"state": self.default[0].value, "reason": self.default[1] or None},
            **{
                k: {"state": s.value, "reason": r or None}
                for k, (s, r) in sorted(self.states.items())
            },
        }

    async def run(self) -> None:
        """Follow the log (the ``risk`` command writes beside us); retry blocks at midnight."""
        interval = self.config.state_poll_interval
        while not self.engine.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.stop_event.wait(), interval)
            if self.engine.stopping:
                return
            try:
                await self.follow()
            except StoreError as exc:
                log.warning("%s", exc)
            if _today() != self.day:
                self.day, self.today = _today(), {}
                blocked = list(self.engine.status.blocked)
                if blocked:
                    self.engine.hedge_symbols(blocked)

    # -- the check --------------------------------------------------------------------------

    def check(self, ticker: str, decision: HedgeDecision, price: Decimal) -> RiskVerdict:
        if _today() != self.day:
            self.day, self.today = _today(), {}
        state, reason = self.state_of(ticker)
        verdict = check_hedge(
            decision,
            price,
            limits=self.config.limits(ticker),
            state=state,
            position=self.position.get(ticker, ZERO),
            hedged_today=self.today.get(ticker, ZERO),
            state_reason=reason or None,
        )
        blocked = self.engine.status.blocked
        if verdict.allowed:
            self.clear(ticker)
            return ALLOWED
        entry: dict[str, Any] = {
            "symbol": ticker,
            "side": decision.side.value,
            "quantity": fmt(decision.quantity),
            "notional": fmt(mul(decision.quantity, price)),
            "limit": verdict.limit,
            "reason": verdict.reason,
            "since": datetime.now(UTC).isoformat(),
        }
        previous = blocked.get(ticker)
        if previous is not None and all(
            previous[k] == entry[k] for k in ("side", "quantity", "limit", "reason")
        ):
            return verdict
        if previous is not None and previous["limit"] == entry["limit"]:
            entry["since"] = previous["since"]
        blocked[ticker] = entry
        log.error(
            "hedge blocked: %s %s %s ($%s): %s; the exposure stays open",
            ticker,
            entry["side"],
            entry["quantity"],
            entry["notional"],
            verdict.reason,
        )
        return verdict

    def clear(self, ticker: str) -> None:
        if self.engine.status.blocked.pop(ticker, None) is not None:
            log.warning("%s: hedge no longer blocked", ticker)

    # -- what the engine commits ------------------------------------------------------------

    def observe(self, events: Sequence[NewEvent]) -> None:
        """Keep positions and today's notional current with every hedge event, as submitted."""
        for new in events:
            event = new.event
            if isinstance(event, HedgeIntended):
                self.reference[event.client_order_id] = event.reference_price
            elif isinstance(event, HedgeProgressed | HedgeClosed):
                quantity = ZERO
                for a in event.hedged:
                    quantity = add(quantity, a.quantity)
                if quantity.is_zero():
                    continue
                ticker = new.aggregate_id
                self._add_fill(ticker, event.side, quantity)
                price = event.average_price or self.reference.get(event.client_order_id, ZERO)
                if _today() != self.day:
                    self.day, self.today = _today(), {}
                self.today[ticker] = add(self.today.get(ticker, ZERO), mul(quantity, price))

    def _add_fill(self, ticker: str, side: Direction, quantity: Decimal) -> None:
        change = signed(side, quantity)
        self.hedged[ticker] = add(self.hedged.get(ticker, ZERO), change)
        self.position[ticker] = add(self.position.get(ticker, ZERO), change)


def _today() -> date:
    return datetime.now(UTC).date()


class _NoLogYet(TradingStateLog):
    """PostgreSQL until the trading state log lives there: no requests, none recorded."""

    def __init__(self) -> None:
        super().__init__("")

    async def after(self, after_id: int) -> list[TradingStateRequest]:
        return []

    async def append(
        self, symbol: str, state: str, reason: str, actor: str, remote: str | None = None
    ) -> TradingStateRequest:
        raise StoreError("trading states are not available with a PostgreSQL database yet")

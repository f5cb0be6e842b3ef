"""Extended-hours hedges: price a limit from the chain, bound it, reserve, record, place.

The market gate's path (regular hours) decides and reserves in one synchronous
step. A limit needs prices first (the Pyth price the fill's transaction read,
from the store; perhaps the broker's mark), so each symbol gets one planning
task: it gathers the prices, then, with no ``await`` between the decision and
the submitted intent, re-checks everything, reserves the shares and records
``HedgeIntended`` (with the limit, the session and the reference's source)
before the order lifecycle places it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ..domain.accumulator import SymbolBook
from ..domain.events import HedgeIntended, position_event
from ..domain.limits import (
    LimitPrice,
    Reference,
    choose_reference,
    flatten_close,
    flatten_progress,
    price_limit,
    ramped_offset,
)
from ..domain.numbers import fmt, mul
from ..domain.orders import LimitOrder, OrderRules
from ..errors import BrokerError
from ..protocols import ExtendedHoursExecutor
from .risk import RiskGate
from .state import EngineContext, log, log_task_failure

PYTH_NAMESPACE = "raindex.enrichment"
"""Where the raindex source keeps each fill's enrichment (its ``pyth`` price), by trade id."""

LOSS_LIMIT = "max_loss_bps"
"""The ``limit`` a hedge held back by the loss bound shows in ``status.blocked``."""


class LimitPlanner:
    def __init__(
        self,
        engine: EngineContext,
        risk: RiskGate,
        *,
        rules: Callable[[], OrderRules],
        client_order_id: Callable[[SymbolBook], str],
        allowed: Callable[[], bool],
    ) -> None:
        self.engine = engine
        self.risk = risk
        self.rules = rules
        self.client_order_id = client_order_id
        self.allowed = allowed
        self.config = engine.config.extended_hours
        self.tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def busy(self) -> bool:
        return any(not t.done() for t in self.tasks.values())

    def request(self, symbols: Sequence[str]) -> None:
        """Plan a limit hedge for each symbol now in one of its extended sessions."""
        sessions = self.engine.sessions
        if not sessions.active or self.engine.stopping:
            return
        now = self.engine.now()
        for ticker in symbols:
            if not sessions.opted_in(ticker) or ticker in self.tasks:
                continue
            book = self.engine.books.get(ticker)
            if book is None or book.in_flight is not None:
                continue
            if book.decide(self.rules()) is None:
                self._unblock(ticker)  # netted away meanwhile: nothing waits any more
                continue
            if not sessions.session(ticker, now)[0].session.extended:
                continue
            task = asyncio.create_task(self._plan(ticker), name=f"limit-{ticker}")
            self.tasks[ticker] = task
            task.add_done_callback(functools.partial(self._done, ticker))
            task.add_done_callback(log_task_failure)

    def _done(self, ticker: str, _task: asyncio.Task[None]) -> None:
        self.tasks.pop(ticker, None)

    async def _plan(self, ticker: str) -> None:
        book = self.engine.books[ticker]
        reference = await self._reference(book)
        # From here to the submitted intent: no await (the log keeps the book's order).
        engine = self.engine
        if not self.allowed() or engine.regular_hours(ticker) or book.in_flight is not None:
            return
        state = engine.symbols.get(ticker)
        if state is not None and state.cooldown_until > time.monotonic():
            return
        decision = book.decide(self.rules())
        if decision is None or book.last_price is None:
            return
        now = engine.now()
        current, following = engine.sessions.session(ticker, now)
        if not current.session.extended:
            return
        if reference is None:
            self._block(
                ticker,
                decision.side.value,
                decision.quantity,
                book.last_price,
                "no reference price (no Pyth price, no onchain price, no broker mark)",
            )
            return
        progress = flatten_progress(
            now, flatten_close(current, following), self.config.close_flatten_window
        )
        offset = ramped_offset(
            self.config.offset_for(ticker), self.config.close_flatten_max_offset_bps, progress
        )
        try:
            priced = price_limit(
                reference,
                decision.side,
                offset,
                onchain=book.last_price,
                max_loss_bps=self.config.max_loss_bps,
            )
        except ValueError as exc:  # no limit on the grid (a price below the smallest tick)
            self._block(ticker, decision.side.value, decision.quantity, book.last_price, str(exc))
            return
        if priced.blocked is not None:
            self._block(
                ticker, decision.side.value, decision.quantity, priced.limit, priced.blocked
            )
            return
        if not self.risk.check(ticker, decision, book.last_price).allowed:
            return
        cid = self.client_order_id(book)
        reserved = book.reserve(decision, cid)
        intent = HedgeIntended(
            cid,
            decision.side,
            decision.quantity,
            reference.price,
            reserved,
            order_type="limit",
            limit_price=priced.limit,
            session=current.session.value,
            reference_source=reference.source,
            onchain_price=book.last_price,
        )
        order = LimitOrder(
            book.symbol,
            decision.side,
            decision.quantity,
            cid,
            priced.limit,
            current.session,
            reference.price,
            reference.source,
        )
        _log_limit(order, priced, progress)
        await engine.append([position_event(book.symbol, intent)])
        engine.spawn_order(order)

    async def _reference(self, book: SymbolBook) -> Reference | None:
        """The chain: the newest open fill's Pyth price, the onchain price, the broker mark."""
        pyth = None
        if book.lots:
            pyth = await self._pyth(str(book.lots[-1].trade_id))
        mark = None
        if pyth is None and book.last_price is None:
            mark = await self._mark(book)
        return choose_reference(pyth, book.last_price, mark)

    async def _pyth(self, trade_id: str) -> Decimal | None:
        try:
            blob = await self.engine.store.get_blob(PYTH_NAMESPACE, trade_id)
        except Exception as exc:  # a store hiccup: the onchain price serves
            log.warning("Pyth price of %s unreadable: %s", trade_id, exc)
            return None
        if blob is None:
            return None
        try:
            record = json.loads(blob)
            pyth = record.get("pyth") if isinstance(record, dict) else None
            return None if not isinstance(pyth, dict) else Decimal(str(pyth["price"]))
        except (ValueError, KeyError, ArithmeticError):
            return None

    async def _mark(self, book: SymbolBook) -> Decimal | None:
        executor = self.engine.executor
        if not isinstance(executor, ExtendedHoursExecutor):
            return None
        try:
            return await executor.position_mark(book.symbol)
        except BrokerError as exc:
            log.warning("%s: broker mark unavailable: %s", book.symbol, exc)
            return None

    def _unblock(self, ticker: str) -> None:
        entry = self.engine.status.blocked.get(ticker)
        if entry is not None and entry.get("limit") == LOSS_LIMIT:
            del self.engine.status.blocked[ticker]
            log.warning("%s: extended-hours hedge no longer held back", ticker)

    def _block(
        self, ticker: str, side: str, quantity: Decimal, price: Decimal, reason: str
    ) -> None:
        """The hedge waits: visible in ``status.blocked`` (dashboard, /metrics, alert)."""
        blocked = self.engine.status.blocked
        previous = blocked.get(ticker)
        if previous is not None and previous.get("reason") == reason:
            return
        entry: dict[str, Any] = {
            "symbol": ticker,
            "side": side,
            "quantity": fmt(quantity),
            "notional": fmt(mul(quantity, price)),
            "limit": LOSS_LIMIT,
            "reason": reason,
            "since": (
                previous["since"]
                if previous is not None and previous.get("limit") == LOSS_LIMIT
                else self.engine.now().isoformat()
            ),
        }
        blocked[ticker] = entry
        log.error("extended-hours hedge held back: %s: %s; the exposure stays open", ticker, reason)


def _log_limit(order: LimitOrder, priced: LimitPrice, progress: float | None) -> None:
    flatten = "" if progress is None else f", close-flatten {progress:.0%}"
    log.info(
        "%s %s %s limit %s in %s (%s %s %+.0f bps%s)",
        order.client_order_id,
        order.side.value,
        order.quantity,
        order.limit_price,
        order.session.value,
        order.reference_source,
        order.reference_price,
        float(priced.offset_bps) * (1 if order.side.value == "BUY" else -1),
        flatten,
    )

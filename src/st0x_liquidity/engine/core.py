"""The hedging engine: the one place where adapters meet the domain.

Concurrency model (one asyncio loop), one part per concern:

* the **ingest pipeline** (:mod:`.ingest`) reads the fill source, drops fills
  the store already has, applies the rest to the symbols' books, decides
  hedges, and commits it all in one transaction. Hedge intents are durable
  before any broker call; no broker call sits on this path, so one slow symbol
  or one bad input never blocks another;
* the **order lifecycle** (:mod:`.orders`): one task per in-flight hedge
  places it (or, on recovery, first asks the broker by ``client_order_id``),
  then polls it until it is terminal;
* the **market gate** (:mod:`.market`) lets new market orders out only while
  the market is open;
* the **session tracker** (:mod:`.sessions`) and the **limit planner**
  (:mod:`.limits`), for symbols opted in to extended hours on a broker that
  trades them: outside regular hours their hedges go out as limit orders,
  repriced by the order lifecycle (docs/extended-hours.md).

Every book mutation is followed by its ``store.submit`` call with no ``await``
in between, so the event order in the log is the order in which books changed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from ..config import AppConfig
from ..domain.accumulator import Allocation, InFlightHedge, Lot, SymbolBook
from ..domain.events import HedgeIntended, NewEvent, StoredEvent, position_event
from ..domain.fills import Direction
from ..domain.orders import HedgeOrder, LimitOrder, MarketOrder, OrderRules
from ..domain.risk import TradingState
from ..domain.sessions import Session
from ..domain.symbols import Symbol
from ..errors import StoreError
from ..protocols import BookSnapshot, Executor, FillSource, PositionStore, SourceItem
from .ingest import IngestPipeline
from .limits import LimitPlanner
from .market import MarketGate
from .orders import OrderLifecycle
from .reconcile import Reconciler
from .risk import RiskGate
from .sessions import SessionTracker
from .state import EngineStatus, SymbolState, log, log_task_failure


class Engine:
    """Ingests fills, hedges them, tracks orders; see the module docstring."""

    def __init__(
        self,
        config: AppConfig,
        store: PositionStore,
        executor: Executor,
        source: FillSource,
        *,
        database_id: str = "",
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.executor = executor
        self.source = source
        self.database_id = database_id
        self.rng = rng or random.Random()
        self.books: dict[str, SymbolBook] = {}
        self.status = EngineStatus()
        self.rules = self._rules(executor.order_rules)
        self.symbols: dict[str, SymbolState] = {}
        self.stop_event = asyncio.Event()
        self.broker_ready = asyncio.Event()
        """Set once the executor has started; whoever starts it clears it first
        (``run`` connects in the background, so a broker that is down at start
        does not stop fills from being recorded). No broker call before it."""
        self.broker_ready.set()
        self.recovered = asyncio.Event()
        """Set once recovery is done and the engine ingests (systemd's READY=1)."""
        self._commits: set[asyncio.Task[Any]] = set()
        self._fatal: BaseException | None = None
        self._listeners: list[Callable[[Sequence[StoredEvent]], None]] = []
        self._parts: list[asyncio.Task[Any]] = []
        self.ingest = IngestPipeline(self)
        self.orders = OrderLifecycle(self)
        self.market = MarketGate(self)
        self.risk = RiskGate(self)
        self.reconciler = Reconciler(self, self.risk)
        simulated = getattr(executor, "simulated_now", None)
        self._now = now or (simulated if callable(simulated) else _wall_clock)
        self.sessions = SessionTracker(self)
        self.limits = LimitPlanner(
            self,
            self.risk,
            rules=lambda: self.rules,
            client_order_id=self._client_order_id,
            allowed=self._base_allowed,
        )

    def now(self) -> datetime:
        """Session time: the wall clock, or the dry-run broker's simulated one."""
        return self._now()

    def regular_hours(self, ticker: str) -> bool:
        """A market order for ``ticker`` may go out now.

        The broker's clock says open and, when sessions are in use, the calendar
        agrees: the clock is read again only at its next change, so just after
        16:00 it may still say open; a market order then would be queued for the
        next open (not a hedge).
        """
        return self.status.market_open and self.sessions.regular(ticker, self.now()) is not False

    def extended_hours(self) -> dict[str, Any]:
        """Sessions per opted-in symbol and the live limit orders (docs/extended-hours.md)."""
        return self.sessions.operator_view(self.now(), self.orders.limits)

    def alive(self) -> bool:
        """Running, and the market gate (which runs until the engine stops) has not ended."""
        return not self.stopping and not any(t.done() for t in self._parts)

    async def wait_for_broker(self) -> bool:
        return await self._until(self.broker_ready)

    async def wait_recovered(self) -> bool:
        return await self._until(self.recovered)

    async def _until(self, event: asyncio.Event) -> bool:
        """Until ``event`` is set (True) or the engine stops (False)."""
        if not event.is_set():
            wanted = asyncio.ensure_future(event.wait())
            stop = asyncio.ensure_future(self.stop_event.wait())
            try:
                await asyncio.wait({wanted, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wanted.cancel()
                stop.cancel()
        return event.is_set() and not self.stopping

    def fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self.stop_event.set()

    def spawn_order(self, order: HedgeOrder) -> None:
        self.orders.spawn(order)

    async def ingest_batch(self, batch: Sequence[SourceItem]) -> list[StoredEvent]:
        """Record a batch of source items and any hedges they trigger, in one commit."""
        return await self.ingest.ingest_batch(batch)

    def _rules(self, rules: OrderRules) -> OrderRules:
        override = self.config.hedging.min_notional
        return rules if override is None else attrs.evolve(rules, min_notional=override)

    def add_listener(self, listener: Callable[[Sequence[StoredEvent]], None]) -> None:
        """Called with every batch of committed events (dashboard, metrics)."""
        self._listeners.append(listener)

    def request_stop(self) -> None:
        self.stop_event.set()

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set()

    def pause(self, reason: str) -> None:
        """Circuit breaker: no new hedges; fills are still recorded."""
        self.status.paused = reason
        log.warning("hedging paused: %s", reason)

    def resume(self) -> None:
        self.status.paused = None
        log.warning("hedging resumed")
        self.hedge_symbols(list(self.books))

    async def set_trading_state(
        self, symbol: str, state: str, reason: str, actor: str, remote: str | None = None
    ) -> None:
        """``active``, ``reducing`` or ``halted`` for one base symbol or ``*`` (all).

        Appended to ``trading_state_log`` and applied at once (a
        ``TradingStateChanged`` event); hedges it unblocks go out.
        """
        await self.risk.request(symbol, TradingState(state), reason, actor, remote)

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    async def run(self) -> None:
        """Recover, then ingest and hedge until stopped or a finite source is drained."""
        await self._recover()
        self.recovered.set()
        await self._run()

    async def _run(self) -> None:
        clock = asyncio.create_task(self.market.run(), name="clock")
        self._parts = [clock]  # runs until the engine stops; ingest may end with a finite source
        risk = asyncio.create_task(self.risk.run(), name="risk")
        sessions = asyncio.create_task(self.sessions.run(), name="sessions")
        reconcile = asyncio.create_task(self.reconciler.run(), name="reconcile")
        maintenance = asyncio.create_task(self._maintenance(), name="maintenance")
        queue: asyncio.Queue[Any] = asyncio.Queue(max(2, self.config.engine.batch_size * 2))
        intake = asyncio.create_task(self.ingest.intake(queue), name="intake")
        ingest = asyncio.create_task(self.ingest.run(queue), name="ingest")
        stop = asyncio.create_task(self.stop_event.wait(), name="stop")
        try:
            done, _ = await asyncio.wait({ingest, stop}, return_when=asyncio.FIRST_COMPLETED)
            if ingest in done and ingest.exception() is not None:
                raise ingest.exception()  # type: ignore[misc]
            if ingest in done and not self.stopping and self.config.engine.exit_when_source_ends:
                await self._drain()
            elif ingest in done and not self.stopping:  # exit_when_source_ends = false
                log.info("source ended; hedging on until SIGINT/SIGTERM")
                await stop
        finally:
            self.stop_event.set()
            for task in (intake, ingest, stop):
                task.cancel()
            await self._finish_orders()
            for task in (clock, maintenance, risk, reconcile, sessions, *self.limits.tasks.values()):
                task.cancel()
            await asyncio.gather(
                intake,
                ingest,
                stop,
                clock,
                maintenance,
                risk,
                reconcile,
                sessions,
                *self.limits.tasks.values(),
                return_exceptions=True,
            )
            for state in self.symbols.values():
                if state.timer is not None:
                    state.timer.cancel()
        if self._fatal is not None:
            raise self._fatal

    async def _finish_orders(self) -> None:
        """Let in-flight broker calls end, up to the shutdown timeout, then cancel."""
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)
        await self.orders.finish(self.config.engine.shutdown_timeout)

    async def _drain(self) -> None:
        """After a finite source ends: wait until no hedge is in flight or due."""
        deadline = time.monotonic() + self.config.engine.drain_timeout
        while not self.stopping and time.monotonic() < deadline:
            # Until the broker has answered and the clock was read once, the books'
            # exposure has not been offered to it yet: a short file must not end the
            # run before its hedges were even decided.
            unchecked = (
                not self.broker_ready.is_set()
                or self.status.market_checked_at is None
                or not self.reconciler.first.is_set()
            )
            busy = unchecked or bool(self._commits) or self.orders.busy or self.limits.busy
            waiting = any(s.timer is not None for s in self.symbols.values())
            if not busy and not waiting:
                return
            await asyncio.sleep(0.02)
        if not self.stopping:
            log.warning("drain timeout: hedges still in flight; they resume on the next start")

    async def _recover(self) -> None:
        await self.risk.load(await self.store.hedge_orders())
        snapshots = await self.store.books()
        for snap in snapshots:
            self.books[snap.position.symbol.ticker] = _book_from(snap)
        in_flight = [s.in_flight for s in snapshots if s.in_flight is not None]
        if in_flight:
            log.info("recovering %d in-flight hedge(s)", len(in_flight))
        for record in in_flight:
            order: HedgeOrder
            if record.order_type == "limit" and record.limit_price is not None:
                order = LimitOrder(
                    record.symbol,
                    Direction(record.side),
                    record.quantity,
                    record.client_order_id,
                    record.limit_price,
                    Session(record.session or Session.CLOSED.value),
                    record.reference_price,
                    record.reference_source or "onchain",
                )
            else:
                order = MarketOrder(
                    record.symbol,
                    Direction(record.side),
                    record.quantity,
                    record.client_order_id,
                    record.reference_price,
                )
            self.orders.spawn(order, recovering=record)

    def _submit(self, events: Sequence[NewEvent]) -> asyncio.Future[list[StoredEvent]]:
        """Hand ``events`` to the store now, so the log keeps the order of book changes."""
        self.risk.observe(events)
        submit = getattr(self.store, "submit", None)
        future: asyncio.Future[list[StoredEvent]]
        if callable(submit):
            future = submit(events)
        else:
            future = asyncio.ensure_future(self.store.append(events))
        # Listeners hear of a commit from the commit itself, not from whoever
        # waits for it: a waiter cancelled at shutdown must not hide events
        # that are in the database (the demo's log, the dashboard's feed).
        future.add_done_callback(self._notify_listeners)
        return future

    def _notify_listeners(self, future: asyncio.Future[list[StoredEvent]]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        stored = future.result()
        for listener in self._listeners:
            try:
                listener(stored)
            except Exception:  # a broken listener must not stop hedging
                log.exception("event listener failed")

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        return await self._committed(self._submit(events))

    async def _committed(self, submitted: asyncio.Future[list[StoredEvent]]) -> list[StoredEvent]:
        try:
            # shield: cancelling the waiter must not cancel the commit's future
            # (the write goes on; its listeners are called when it lands).
            stored = await asyncio.shield(submitted)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.fail(exc if isinstance(exc, StoreError) else StoreError(str(exc)))
            raise
        return stored

    def _base_allowed(self) -> bool:
        """Hedging in any session: not paused, broker authorised, reconciled once, running."""
        return (
            self.status.paused is None
            and self.status.auth_required is None
            and self.reconciler.first.is_set()
            and not self.stopping
        )

    def _hedging_allowed(self) -> bool:
        return self.status.market_open and self._base_allowed()

    def decide_many(self, symbols: Sequence[str], events: list[NewEvent]) -> list[HedgeOrder]:
        """Reserve lots for every symbol that crossed its threshold; add the intents.

        Outside regular hours, symbols in one of their extended sessions go to the
        limit planner instead (it prices, then records and places on its own).
        """
        if not self._hedging_allowed():
            if not self.status.market_open and self._base_allowed():
                self.limits.request(symbols)
            return []
        orders: list[HedgeOrder] = []
        now = time.monotonic()
        after_hours: list[str] = []
        for ticker in symbols:
            state = self.symbols.get(ticker)
            if state is not None and state.cooldown_until > now:
                continue
            if not self.regular_hours(ticker):  # the clock is behind the calendar
                after_hours.append(ticker)
                continue
            book = self.books[ticker]
            decision = book.decide(self.rules)
            if decision is None or book.last_price is None:
                if book.in_flight is None:
                    self.risk.clear(ticker)
                continue
            if not self.risk.check(ticker, decision, book.last_price).allowed:
                continue  # nothing reserved: the exposure stays open, visibly blocked
            cid = self._client_order_id(book)
            reserved = book.reserve(decision, cid)
            events.append(
                position_event(
                    book.symbol,
                    HedgeIntended(cid, decision.side, decision.quantity, book.last_price, reserved),
                )
            )
            orders.append(
                MarketOrder(book.symbol, decision.side, decision.quantity, cid, book.last_price)
            )
        if after_hours:
            self.limits.request(after_hours)
        return orders

    def _client_order_id(self, book: SymbolBook) -> str:
        """Deterministic: prefix, database id, symbol, and the symbol's hedge number."""
        parts = [self.config.hedging.client_order_prefix, self.database_id, book.symbol.ticker]
        return "-".join(p for p in parts if p) + f"-{book.hedges_placed + 1}"

    def hedge_symbols(self, symbols: Sequence[str]) -> None:
        """Decide, commit and place hedges outside the ingest path (clock open, cooldown end)."""
        if self.stopping:
            return
        events: list[NewEvent] = []
        orders = self.decide_many(symbols, events)
        if not events:
            return

        async def commit() -> None:
            await self.append(events)
            for order in orders:
                self.orders.spawn(order)

        task = asyncio.create_task(commit(), name="hedge-commit")
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)
        task.add_done_callback(log_task_failure)

    async def _maintenance(self) -> None:
        try:
            await self.executor.maintenance()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("executor maintenance task failed")

    def commit_in_background(
        self, events: Sequence[NewEvent], then: Callable[[], None]
    ) -> asyncio.Future[list[StoredEvent]]:
        """Submit ``events`` now (in call order); ``then`` runs once they are committed."""
        submitted = self._submit(events)

        async def finish() -> list[StoredEvent]:
            stored = await self._committed(submitted)
            then()
            return stored

        task = asyncio.ensure_future(finish())
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)
        return task

    def book(self, symbol: Symbol) -> SymbolBook:
        book = self.books.get(symbol.ticker)
        if book is None:
            book = self.books[symbol.ticker] = SymbolBook(symbol)
        return book


def _book_from(snap: BookSnapshot) -> SymbolBook:
    position = snap.position
    lots = deque(
        Lot(lot.trade_id, Direction(lot.direction), lot.open_quantity) for lot in snap.lots
    )
    book = SymbolBook(
        position.symbol,
        lots=lots,
        last_price=position.last_price,
        hedges_placed=position.hedges_placed,
    )
    record = snap.in_flight
    if record is not None:
        book.in_flight = InFlightHedge(
            record.client_order_id,
            Direction(record.side),
            record.quantity,
            deque(Allocation(t, q) for t, q in record.reserved),
            record.filled_quantity,
        )
    return book


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def book_net(book: SymbolBook) -> Decimal:
    return book.net

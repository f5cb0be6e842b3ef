"""The hedging engine: the one place where adapters meet the domain.

Concurrency model (one asyncio loop):

* an **intake** task reads the fill source into a bounded queue; the **ingest**
  loop takes whatever is ready (up to ``engine.batch_size``), drops fills the
  store already has, applies the rest to the symbols' books, decides hedges, and
  commits it all in one transaction. Hedge intents are durable before any broker
  call; no broker call ever sits in the ingest path, so one slow symbol or one
  bad input never blocks another (the seed system's head-of-line blocking);
* one **order task** per in-flight hedge places it (or, on recovery, first asks
  the broker by ``client_order_id``), then polls it until it is terminal;
* a **clock** task gates new hedges on the executor's market clock.

Every book mutation is followed by its ``store.append`` call with no ``await``
in between; the store serialises appends first-come first-served, so the event
order in the log is the order in which books changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from .backoff import backoff_delay
from .channel import Channel
from .collector import tuned_collector
from .config import AppConfig
from .domain.accumulator import Allocation, InFlightHedge, Lot, Settlement, SymbolBook
from .domain.events import (
    FILL_SOURCE,
    POSITION,
    CursorCheckpointed,
    FillRecorded,
    FillReinstated,
    FillReverted,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    HedgeSubmitted,
    InputSkipped,
    NewEvent,
    StoredEvent,
    correction_id,
    new_event,
    new_fill_recorded,
    position_event,
)
from .domain.fills import Direction, Fill
from .domain.numbers import ZERO
from .domain.orders import MarketOrder, OrderRules, OrderState, OrderUpdate
from .domain.symbols import Symbol
from .errors import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    BrokerError,
    FinalBrokerError,
    RetryableBrokerError,
    StoreError,
)
from .protocols import (
    BookSnapshot,
    Executor,
    FillItem,
    FillSource,
    HedgeOrderRecord,
    PositionStore,
    RevertedItem,
    SkippedItem,
    SourceItem,
)

log = logging.getLogger(__name__)

_END = object()
T = TypeVar("T")
_PIPELINE_DEPTH = 8
"""Ingest batches submitted and not yet committed, at most.

The writer holds up to two transactions (one running, one queued) and each
takes whatever batches were submitted meanwhile; the engine keeps applying
batches while they are written. Measured on the ingestion benchmark (pairs of
runs interleaved): two in flight ~8.5k fills/s, four ~13k, and with the
writer's queue, eight beat four in 4 pairs of 4 (+11 % median) and sixteen
did not beat eight. It costs nothing in safety: orders still go out only after
the commit that carries their intents."""


@attrs.define
class EngineStatus:
    """What the dashboard and the logs report about the running engine."""

    started_at: datetime = attrs.field(factory=lambda: datetime.now(UTC))
    market_open: bool = False
    market_checked_at: datetime | None = None
    source_state: str = "starting"
    source_cursor: Any = None
    last_fill_at: datetime | None = None
    last_item_at: datetime | None = None
    fills_ingested: int = 0
    duplicates_dropped: int = 0
    inputs_skipped: int = 0
    hedges_placed: int = 0
    hedges_filled: int = 0
    hedges_failed: int = 0
    broker_error: str | None = None
    auth_required: str | None = None
    paused: str | None = None


@attrs.define
class _SymbolState:
    failures: int = 0
    cooldown_until: float = 0.0
    timer: asyncio.TimerHandle | None = None


class EngineStopped(Exception):
    pass


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
        self._symbols: dict[str, _SymbolState] = {}
        self._order_tasks: dict[str, asyncio.Task[None]] = {}
        self._commits: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._fatal: BaseException | None = None
        self._listeners: list[Callable[[Sequence[StoredEvent]], None]] = []
        self._placed_at: dict[str, float] = {}
        # Keyed by trade id text: a str hashes and compares in C, a TradeId
        # through attrs' Python methods, several times per fill.
        self._uncommitted: dict[str, tuple[tuple[Fill, int], int]] = {}
        self._batches = 0

    def _rules(self, rules: OrderRules) -> OrderRules:
        override = self.config.hedging.min_notional
        return rules if override is None else attrs.evolve(rules, min_notional=override)

    # -- public control ----------------------------------------------------------------

    def add_listener(self, listener: Callable[[Sequence[StoredEvent]], None]) -> None:
        """Called with every batch of committed events (dashboard, metrics)."""
        self._listeners.append(listener)

    def request_stop(self) -> None:
        self._stopping.set()

    @property
    def stop_requested(self) -> bool:
        return self._stopping.is_set()

    def pause(self, reason: str) -> None:
        """Circuit breaker: no new hedges; fills are still recorded."""
        self.status.paused = reason
        log.warning("hedging paused: %s", reason)

    def resume(self) -> None:
        self.status.paused = None
        log.warning("hedging resumed")
        self._hedge_symbols(list(self.books))

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        """Recover, then ingest and hedge until stopped or a finite source is drained."""
        await self._recover()
        with tuned_collector():
            await self._run()

    async def _run(self) -> None:
        clock = asyncio.create_task(self._clock_loop(), name="clock")
        maintenance = asyncio.create_task(self._maintenance(), name="maintenance")
        queue: Channel[Any] = Channel(max(2, self.config.engine.batch_size * 2))
        intake = asyncio.create_task(self._intake(queue), name="intake")
        ingest = asyncio.create_task(self._ingest(queue), name="ingest")
        stop = asyncio.create_task(self._stopping.wait(), name="stop")
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
            self._stopping.set()
            for task in (intake, ingest, stop):
                task.cancel()
            await self._finish_orders()
            for task in (clock, maintenance):
                task.cancel()
            await asyncio.gather(intake, ingest, stop, clock, maintenance, return_exceptions=True)
            for state in self._symbols.values():
                if state.timer is not None:
                    state.timer.cancel()
        if self._fatal is not None:
            raise self._fatal

    async def _finish_orders(self) -> None:
        """Let in-flight broker calls end, up to the shutdown timeout, then cancel."""
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)
        tasks = [t for t in self._order_tasks.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.engine.shutdown_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self) -> None:
        """After a finite source ends: wait until no hedge is in flight or due."""
        deadline = time.monotonic() + self.config.engine.drain_timeout
        while not self.stopping and time.monotonic() < deadline:
            busy = bool(self._commits) or any(not t.done() for t in self._order_tasks.values())
            waiting = any(s.timer is not None for s in self._symbols.values())
            if not busy and not waiting:
                return
            await asyncio.sleep(0.02)
        if not self.stopping:
            log.warning("drain timeout: hedges still in flight; they resume on the next start")

    # -- recovery ------------------------------------------------------------------

    async def _recover(self) -> None:
        snapshots = await self.store.books()
        for snap in snapshots:
            self.books[snap.position.symbol.ticker] = _book_from(snap)
        in_flight = [s.in_flight for s in snapshots if s.in_flight is not None]
        if in_flight:
            log.info("recovering %d in-flight hedge(s)", len(in_flight))
        for record in in_flight:
            order = MarketOrder(
                record.symbol,
                Direction(record.side),
                record.quantity,
                record.client_order_id,
                record.reference_price,
            )
            self._spawn_order(order, recovering=record)

    # -- intake and ingestion ----------------------------------------------------------

    async def _intake(self, queue: Channel[Any]) -> None:
        cursor = await self.store.cursor(self.source.name)
        self.status.source_state = "running"
        try:
            offer = queue.offer
            async for item in self.source.stream(cursor):
                if not offer(item):
                    await queue.put(item)
            self.status.source_state = "ended"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.status.source_state = f"failed: {exc}"
            log.error("fill source %s failed: %s", self.source.name, exc)
            await queue.put(exc)
            return
        await queue.put(_END)

    async def _ingest(self, queue: Channel[Any]) -> None:
        batch_size = self.config.engine.batch_size
        pipelined = callable(getattr(self.store, "submit", None))
        in_flight: deque[asyncio.Future[list[StoredEvent]]] = deque()
        try:
            while True:
                batch: list[SourceItem] = await queue.get_batch(batch_size)
                end: Any = batch[-1]
                # _END or the source's exception is always the last item the
                # intake puts, so only a batch's last item can be one.
                if end is _END or isinstance(end, BaseException):
                    batch.pop()
                else:
                    end = None
                if batch:
                    # Batch N+1 is read, deduplicated, applied and encoded while batch
                    # N is being written; at most _PIPELINE_DEPTH commits are pending.
                    in_flight.append(await self._ingest_submit(batch))
                    depth = _PIPELINE_DEPTH if pipelined else 1
                    while len(in_flight) >= depth or (in_flight and in_flight[0].done()):
                        await in_flight.popleft()
                if end is _END:
                    while in_flight:
                        await in_flight.popleft()
                    return
                if isinstance(end, BaseException):
                    raise end
        finally:
            for future in in_flight:  # committed whatever happens: let the commit tasks end
                future.add_done_callback(_consume)

    async def ingest_batch(self, batch: Sequence[SourceItem]) -> list[StoredEvent]:
        """Record a batch of source items and any hedges they trigger, in one commit."""
        return await (await self._ingest_submit(batch))

    async def _ingest_submit(
        self, batch: Sequence[SourceItem]
    ) -> asyncio.Future[list[StoredEvent]]:
        """Apply a batch to the books and submit its events; the future ends with the commit.

        Trade ids of batches submitted but not committed yet are not in the store's
        committed state, so their states are kept in ``_uncommitted`` and override
        what the store says (taken before the read: a batch that commits during the
        read is then in one or the other).
        """
        ids = [
            i.fill.trade_id if isinstance(i, FillItem) else i.trade_id
            for i in batch
            if isinstance(i, FillItem | RevertedItem)
        ]
        uncommitted = self._uncommitted
        pending = {t.text: uncommitted[t.text][0] for t in ids if t.text in uncommitted}
        found = await self.store.trade_corrections(ids) if ids else {}
        known = {t.text: state for t, state in found.items()}
        known.update(pending)
        changed: list[str] = []  # ids whose state this batch sets
        events: list[NewEvent] = []
        touched: dict[str, None] = {}
        cursor_carried = False
        last = batch[-1] if batch else None
        for item in batch:
            if isinstance(item, FillItem):
                cursor_carried = self._ingest_fill(
                    item, known, changed, events, touched, last=item is last
                )
            elif isinstance(item, RevertedItem):
                cursor_carried = self._ingest_revert(item, known, changed, events, touched)
            elif isinstance(item, SkippedItem):
                self._ingest_skip(item, events)
                cursor_carried = True
            else:
                cursor_carried = False
        if batch and not cursor_carried:
            events.append(
                NewEvent(
                    FILL_SOURCE,
                    self.source.name,
                    CursorCheckpointed(),
                    {"source": self.source.name, "cursor": dict(batch[-1].cursor)},
                )
            )
        orders = self._decide_many(list(touched), events)
        self._batches += 1
        number = self._batches
        for t in changed:
            uncommitted[t] = (known[t], number)
        cursor = dict(batch[-1].cursor) if batch else None

        def committed() -> None:
            for t in changed:
                if uncommitted.get(t, (None, 0))[1] == number:
                    del uncommitted[t]
            if cursor is not None:
                self.status.source_cursor = cursor
            self.status.last_item_at = datetime.now(UTC)
            for order in orders:
                self._spawn_order(order)

        return self._commit_in_background(events, committed)

    def _commit_in_background(
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

    def _ingest_fill(
        self,
        item: FillItem,
        known: dict[str, tuple[Fill, int]],
        changed: list[str],
        events: list[NewEvent],
        touched: dict[str, None],
        *,
        last: bool,
    ) -> bool:
        """Apply a new fill (or reinstate a reverted one); False for a duplicate.

        Only the batch's ``last`` item's event carries the source's cursor: the
        batch commits whole, so the cursor after it is the only one a restart
        can use, and encoding one per fill cost 7 % of the engine's work. The
        fill's own trade id and block say where it came from.
        """
        fill = item.fill
        trade_id = fill.trade_id.text
        state = known.get(trade_id)
        if state is not None and state[1] % 2 == 0:
            self.status.duplicates_dropped += 1
            return False
        ticker = fill.symbol.ticker
        book = self.books.get(ticker) or self._book(fill.symbol)
        event: FillRecorded | FillReinstated
        changed.append(trade_id)
        if state is None:
            known[trade_id] = (fill, 0)
            event = new_fill_recorded(fill, book.apply_fill(fill))
        else:  # reverted earlier, back on the canonical chain
            k = state[1] + 1
            entry = attrs.evolve(fill, trade_id=correction_id(fill.trade_id, k))
            known[trade_id] = (state[0], k)
            event = FillReinstated(fill.trade_id, entry, book.apply_fill(entry))
            log.warning("fill %s is back on the canonical chain: reinstated", fill.trade_id)
        metadata: dict[str, Any] = {"source": self.source.name}
        if last:
            metadata["cursor"] = dict(item.cursor)
        events.append(new_event(POSITION, ticker, event, metadata))
        touched[ticker] = None
        self.status.fills_ingested += 1
        self.status.last_fill_at = fill.block_timestamp
        return True

    def _ingest_revert(
        self,
        item: RevertedItem,
        known: dict[str, tuple[Fill, int]],
        changed: list[str],
        events: list[NewEvent],
        touched: dict[str, None],
    ) -> bool:
        """Reverse a fill that left the canonical chain with a compensating entry."""
        state = known.get(item.trade_id.text)
        if state is None or state[1] % 2 == 1:
            reason = f"{item.reason} (no recorded fill to revert)"
            self._ingest_skip(SkippedItem(reason, str(item.trade_id), item.cursor), events)
            return True
        original, k = state[0], state[1] + 1
        entry = attrs.evolve(
            original,
            trade_id=correction_id(original.trade_id, k),
            direction=original.direction.opposite,
        )
        known[item.trade_id.text] = (original, k)
        changed.append(item.trade_id.text)
        book = self._book(original.symbol)
        event = FillReverted(item.trade_id, entry, item.reason, book.apply_fill(entry))
        events.append(
            position_event(
                original.symbol, event, source=self.source.name, cursor=dict(item.cursor)
            )
        )
        log.error("fill %s reversed: %s", item.trade_id, item.reason)
        touched[original.symbol.ticker] = None
        return True

    def _ingest_skip(self, item: SkippedItem, events: list[NewEvent]) -> None:
        source = self.source.name
        log.info("skipped input from %s: %s", source, item.reason)
        events.append(
            NewEvent(
                FILL_SOURCE,
                source,
                InputSkipped(item.reason, item.raw),
                {"source": source, "cursor": dict(item.cursor)},
            )
        )
        self.status.inputs_skipped += 1

    def _book(self, symbol: Symbol) -> SymbolBook:
        book = self.books.get(symbol.ticker)
        if book is None:
            book = self.books[symbol.ticker] = SymbolBook(symbol)
        return book

    def _submit(self, events: Sequence[NewEvent]) -> asyncio.Future[list[StoredEvent]]:
        """Hand ``events`` to the store now, so the log keeps the order of book changes."""
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

    async def _append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        return await self._committed(self._submit(events))

    async def _committed(self, submitted: asyncio.Future[list[StoredEvent]]) -> list[StoredEvent]:
        try:
            # shield: cancelling the waiter must not cancel the commit's future
            # (the write goes on; its listeners are called when it lands).
            stored = await asyncio.shield(submitted)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._fatal = exc if isinstance(exc, StoreError) else StoreError(str(exc))
                self._stopping.set()
            raise
        return stored

    # -- hedge decisions -----------------------------------------------------------------

    def _hedging_allowed(self) -> bool:
        return (
            self.status.market_open
            and self.status.paused is None
            and self.status.auth_required is None
            and not self.stopping
        )

    def _decide_many(self, symbols: Sequence[str], events: list[NewEvent]) -> list[MarketOrder]:
        """Reserve lots for every symbol that crossed its threshold; add the intents."""
        if not self._hedging_allowed():
            return []
        orders: list[MarketOrder] = []
        now = time.monotonic()
        for ticker in symbols:
            state = self._symbols.get(ticker)
            if state is not None and state.cooldown_until > now:
                continue
            book = self.books[ticker]
            decision = book.decide(self.rules)
            if decision is None or book.last_price is None:
                continue
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
        return orders

    def _client_order_id(self, book: SymbolBook) -> str:
        """Deterministic: prefix, database id, symbol, and the symbol's hedge number."""
        parts = [self.config.hedging.client_order_prefix, self.database_id, book.symbol.ticker]
        return "-".join(p for p in parts if p) + f"-{book.hedges_placed + 1}"

    def _hedge_symbols(self, symbols: Sequence[str]) -> None:
        """Decide, commit and place hedges outside the ingest path (clock open, cooldown end)."""
        if self.stopping:
            return
        events: list[NewEvent] = []
        orders = self._decide_many(symbols, events)
        if not events:
            return

        async def commit() -> None:
            await self._append(events)
            for order in orders:
                self._spawn_order(order)

        task = asyncio.create_task(commit(), name="hedge-commit")
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)
        task.add_done_callback(_log_task_failure)

    # -- order life cycle ------------------------------------------------------------------

    def _spawn_order(self, order: MarketOrder, recovering: HedgeOrderRecord | None = None) -> None:
        self._placed_at[order.client_order_id] = time.perf_counter()
        task = asyncio.create_task(
            self._drive_order(order, recovering), name=f"order-{order.client_order_id}"
        )
        self._order_tasks[order.client_order_id] = task
        task.add_done_callback(functools.partial(self._order_done, order.client_order_id))

    def _order_done(self, cid: str, task: asyncio.Task[None]) -> None:
        self._order_tasks.pop(cid, None)
        self._placed_at.pop(cid, None)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("order task %s failed: %s", cid, exc)
            if isinstance(exc, StoreError):
                self._fatal = exc
                self._stopping.set()

    async def _drive_order(self, order: MarketOrder, recovering: HedgeOrderRecord | None) -> None:
        cid = order.client_order_id
        update: OrderUpdate | None = None
        if recovering is not None and recovering.state != OrderState.PENDING.value:
            update = OrderUpdate(
                recovering.broker_order_id or "",
                OrderState(recovering.state),
                recovering.filled_quantity,
                recovering.average_price,
            )
            if not update.broker_order_id:
                update = None
        if update is None:
            if recovering is not None:
                update = await self._find(order)
                if update is not None:
                    log.info("recovered order %s at the broker: %s", cid, update.state.value)
            if update is None:
                update = await self._place(order)
                if update is None:
                    return  # stopping before the broker accepted anything
            if update.state is not OrderState.PENDING:
                self.status.hedges_placed += 1
            submitted = position_event(order.symbol, HedgeSubmitted(cid, update.broker_order_id))
            update = self._sanitize(order, update)
            if update.state.terminal:  # filled or refused at once: one commit for both facts
                await self._close(order, update, before=[submitted])
                return
            await self._append([submitted])
        await self._track(order, update)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]], *, ambiguous_ok: bool) -> T:
        """Call the broker, retrying what may be retried, with capped backoff.

        Returns the result, or raises FinalBrokerError, or AmbiguousBrokerError when
        ``ambiguous_ok`` is false (the caller must reconcile before retrying).
        """
        attempt = 0
        cfg = self.config.hedging
        while True:
            if self.stopping:
                raise EngineStopped
            try:
                result = await fn()
                self.status.broker_error = None
                if self.status.auth_required is not None:
                    self.status.auth_required = None
                    log.warning("broker authorised again; hedging resumes")
                    self._hedge_symbols(list(self.books))
                return result
            except AuthenticationRequiredError as exc:
                if self.status.auth_required is None:
                    log.error("%s: broker needs re-authorisation: %s", what, exc)
                self.status.auth_required = str(exc)
                delay = cfg.retry_backoff_max
            except AmbiguousBrokerError as exc:
                if not ambiguous_ok:
                    raise
                delay = self._retry_delay(attempt, None)
                self._note_broker_error(what, exc, delay)
            except RetryableBrokerError as exc:
                delay = self._retry_delay(attempt, exc.retry_after)
                self._note_broker_error(what, exc, delay)
            except FinalBrokerError:
                raise
            except BrokerError as exc:
                delay = self._retry_delay(attempt, None)
                self._note_broker_error(what, exc, delay)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.config.hedging
        delay = backoff_delay(
            attempt + 1, max(cfg.poll_interval / 10, 0.05), cfg.retry_backoff_max, self.rng
        )
        return max(delay, retry_after or 0.0)

    def _note_broker_error(self, what: str, exc: Exception, delay: float) -> None:
        self.status.broker_error = f"{what}: {exc}"
        log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)

    async def _find(self, order: MarketOrder) -> OrderUpdate | None:
        try:
            found: OrderUpdate | None = await self._call(
                f"find order {order.client_order_id}",
                functools.partial(self.executor.find_order, order.client_order_id, order),
                ambiguous_ok=True,
            )
        except EngineStopped:
            raise asyncio.CancelledError from None
        return found

    async def _place(self, order: MarketOrder) -> OrderUpdate | None:
        """Place the order exactly once: after an ambiguous outcome, look before retrying."""
        cid = order.client_order_id
        while True:
            try:
                placed: OrderUpdate = await self._call(
                    f"place {cid}",
                    functools.partial(self.executor.place_market_order, order),
                    ambiguous_ok=False,
                )
                return placed
            except EngineStopped:
                return None
            except AmbiguousBrokerError as exc:
                log.warning("placing %s had an unknown outcome (%s); asking the broker", cid, exc)
                found = await self._find(order)
                if found is not None:
                    return found
            except FinalBrokerError as exc:
                await self._close(order, OrderUpdate("", OrderState.FAILED, reason=str(exc)))
                return None
            except Exception as exc:  # a plugin bug: treat the outcome as unknown
                log.exception("executor raised an unexpected error placing %s", cid)
                found = await self._find(order)
                if found is not None:
                    return found
                del exc

    async def _track(self, order: MarketOrder, update: OrderUpdate) -> None:
        cfg = self.config.hedging
        cid = order.client_order_id
        while True:
            update = self._sanitize(order, update)
            if update.state.terminal:
                await self._close(order, update)
                return
            book = self.books[order.symbol.ticker]
            hedge = book.in_flight
            if hedge is not None and update.filled_quantity > hedge.filled:
                settlement = book.progress(cid, update.filled_quantity)
                await self._append(
                    [
                        position_event(
                            order.symbol,
                            HedgeProgressed(
                                cid,
                                order.side,
                                update.filled_quantity,
                                update.average_price,
                                settlement.hedged,
                            ),
                        )
                    ]
                )
            delay = cfg.poll_interval + self.rng.uniform(0, cfg.poll_jitter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self.stopping:
                return
            try:
                update = await self._call(
                    f"status of {cid}",
                    functools.partial(self.executor.order_status, update.broker_order_id),
                    ambiguous_ok=True,
                )
            except EngineStopped:
                return
            except FinalBrokerError as exc:
                # The broker refuses to tell us about an order it accepted: keep the
                # shares reserved (never re-hedge blindly) and keep asking.
                self.status.broker_error = f"status of {cid}: {exc}"
                log.error("cannot read order %s: %s; will keep trying", cid, exc)

    def _sanitize(self, order: MarketOrder, update: OrderUpdate) -> OrderUpdate:
        """Guard the books against broker replies that cannot be right."""
        filled = update.filled_quantity
        if update.state is OrderState.FILLED and filled <= ZERO:
            filled = order.quantity
        if filled > order.quantity:
            log.error(
                "broker reports %s filled for order %s of %s; counting only the order quantity",
                filled,
                order.client_order_id,
                order.quantity,
            )
            filled = order.quantity
        filled = max(filled, ZERO)
        return attrs.evolve(update, filled_quantity=filled)

    async def _close(
        self, order: MarketOrder, update: OrderUpdate, before: Sequence[NewEvent] = ()
    ) -> None:
        book = self.books[order.symbol.ticker]
        cid = order.client_order_id
        settlement: Settlement = book.finish(cid, update.filled_quantity)
        state = update.state if update.state.terminal else OrderState.FAILED
        if state is OrderState.FILLED and update.filled_quantity < order.quantity:
            state = OrderState.CANCELLED
        event = HedgeClosed(
            cid,
            order.side,
            state,
            update.filled_quantity,
            update.average_price,
            update.reason,
            settlement.hedged,
            settlement.released,
            settlement.nettings,
        )
        await self._append([*before, position_event(order.symbol, event)])
        symbol_state = self._symbols.setdefault(order.symbol.ticker, _SymbolState())
        if state is OrderState.FILLED:
            self.status.hedges_filled += 1
            symbol_state.failures = 0
            self._hedge_symbols([order.symbol.ticker])
        else:
            self.status.hedges_failed += 1
            symbol_state.failures += 1
            delay = backoff_delay(
                symbol_state.failures,
                self.config.hedging.failure_backoff,
                self.config.hedging.failure_backoff_max,
                self.rng,
            )
            log.warning(
                "hedge %s %s (%s); %s may hedge again in %.1fs",
                cid,
                state.value,
                update.reason,
                order.symbol,
                delay,
            )
            symbol_state.cooldown_until = time.monotonic() + delay
            self._schedule(order.symbol.ticker, symbol_state, delay)

    def _schedule(self, ticker: str, state: _SymbolState, delay: float) -> None:
        if state.timer is not None:
            state.timer.cancel()

        def fire() -> None:
            state.timer = None
            self._hedge_symbols([ticker])

        state.timer = asyncio.get_running_loop().call_later(delay, fire)

    # -- market clock and maintenance ------------------------------------------------------

    async def _clock_loop(self) -> None:
        attempt = 0
        while not self.stopping:
            try:
                clock = await self.executor.market_clock()
                attempt = 0
            except AuthenticationRequiredError as exc:
                if self.status.auth_required is None:
                    log.error("market clock: broker needs re-authorisation: %s", exc)
                self.status.auth_required = str(exc)
                await asyncio.sleep(self.config.hedging.clock_recheck)
                continue
            except BrokerError as exc:
                attempt += 1
                delay = backoff_delay(attempt, 1.0, self.config.hedging.clock_recheck, self.rng)
                log.warning("market clock unavailable (%s); asking again in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            if self.status.auth_required is not None:
                self.status.auth_required = None
                log.warning("broker authorised again; hedging resumes")
                self._hedge_symbols(list(self.books))
            was_open = self.status.market_open
            self.status.market_open = clock.is_open
            self.status.market_checked_at = datetime.now(UTC)
            if clock.is_open and not was_open:
                log.info("market open: hedging enabled")
                self._hedge_symbols(list(self.books))
            elif was_open and not clock.is_open:
                log.info("market closed: fills keep accumulating, hedges wait for the open")
            change = clock.next_close if clock.is_open else clock.next_open
            delay = self.config.hedging.clock_recheck
            if change is not None:
                until = (change - datetime.now(UTC)).total_seconds()
                delay = max(0.5, min(delay, until + 0.5))
            await asyncio.sleep(delay)

    async def _maintenance(self) -> None:
        try:
            await self.executor.maintenance()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("executor maintenance task failed")


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a future's outcome so an unawaited failure is not reported twice."""
    if not future.cancelled():
        future.exception()


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed: %s", task.get_name(), task.exception())


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


def book_net(book: SymbolBook) -> Decimal:
    return book.net

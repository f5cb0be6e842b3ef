"""A hedge order's life: placed exactly once, looked up after doubt, polled to its end.

One task per in-flight order. Placement happens only after the intent is
durable and only while this process holds the database's lease; an ambiguous
outcome is resolved by asking the broker for the ``client_order_id`` before
anything is placed again (recovery does the same on start). Partial fills and
the terminal state are events; a failed hedge backs its symbol off.

Extended-hours limits are also cancelled: when older than the reprice timeout
(shorter in the close-flatten window) and at the regular open. The cancel is
durable first (``HedgeCancelRequested``), then asked of the broker, then
polled until the broker confirms an end; what filled is booked and the rest
goes back to the book (``HedgeClosed`` CANCELLED), and the next decision
places a new order under a new ``client_order_id``. A restart finds the
request in the store and resumes at the broker call. A limit intent that a
restart finds never placed goes out as recorded (its own ``client_order_id``)
once a session is open, and is repriced on its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import attrs

from ..backoff import backoff_delay
from ..domain.accumulator import Settlement
from ..domain.events import (
    HedgeCancelRequested,
    HedgeClosed,
    HedgeProgressed,
    HedgeSubmitted,
    NewEvent,
    position_event,
)
from ..domain.limits import flatten_close, flatten_progress
from ..domain.numbers import ZERO
from ..domain.orders import HedgeOrder, LimitOrder, MarketOrder, OrderState, OrderUpdate
from ..domain.sessions import Session
from ..errors import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    BrokerError,
    FinalBrokerError,
    RetryableBrokerError,
    StoreError,
    StoreUnavailableError,
)
from ..protocols import ExtendedHoursExecutor, HedgeOrderRecord
from .faults import checkpoint
from .state import EngineContext, EngineStopped, SymbolState, log

T = TypeVar("T")


class _SessionPassed(Exception):
    """The order's session ended between the decision and the broker call: not sent."""


class OrderLifecycle:
    def __init__(self, engine: EngineContext) -> None:
        self.engine = engine
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.placed_at: dict[str, float] = {}
        self.limits: dict[str, tuple[LimitOrder, datetime]] = {}
        """Live limit orders and since when (engine time): the dashboard's, and repricing's."""

    @property
    def busy(self) -> bool:
        return any(not t.done() for t in self.tasks.values())

    async def finish(self, grace: float) -> None:
        """Let in-flight broker calls end, up to ``grace`` seconds, then cancel them."""
        tasks = [t for t in self.tasks.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, order: HedgeOrder, recovering: HedgeOrderRecord | None = None) -> None:
        self.placed_at[order.client_order_id] = time.perf_counter()
        if isinstance(order, LimitOrder):
            since = self.engine.now()
            if recovering is not None:  # the store's times are wall-clock: carry the age over
                placed = recovering.submitted_at or recovering.created_at
                since -= max(datetime.now(UTC) - placed, timedelta(0))
            self.limits[order.client_order_id] = (order, since)
        task = asyncio.create_task(
            self._drive(order, recovering), name=f"order-{order.client_order_id}"
        )
        self.tasks[order.client_order_id] = task
        task.add_done_callback(functools.partial(self._done, order.client_order_id))

    def _done(self, cid: str, task: asyncio.Task[None]) -> None:
        self.tasks.pop(cid, None)
        self.placed_at.pop(cid, None)
        self.limits.pop(cid, None)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("order task %s failed: %s", cid, exc)
            if isinstance(exc, StoreError):
                self.engine.fail(exc)

    async def _drive(self, order: HedgeOrder, recovering: HedgeOrderRecord | None) -> None:
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
                # A recovered limit goes out as recorded, under its own client_order_id
                # (a broker that has it after all refuses a second), and is repriced
                # on its timeout like any other.
                update = await self._place(order, fresh=recovering is None)
                if update is None:
                    return  # stopping before the broker accepted anything
                if isinstance(order, LimitOrder) and recovering is None:
                    self.limits[cid] = (order, self.engine.now())  # its age counts from here
            if update.state is not OrderState.PENDING:
                self.engine.status.hedges_placed += 1
            submitted = position_event(order.symbol, HedgeSubmitted(cid, update.broker_order_id))
            update = self._sanitize(order, update)
            if update.state.terminal:  # filled or refused at once: one commit for both facts
                await self._close(order, update, before=[submitted])
                return
            await self.engine.append([submitted])
        if recovering is not None and recovering.cancel_requested_at is not None:
            log.info("resuming the cancel of %s (%s)", cid, recovering.cancel_reason)
            await self._cancel(order, update, recovering.cancel_reason or "recovery", requested=True)
            return
        await self._track(order, update)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]], *, ambiguous_ok: bool) -> T:
        """Call the broker, retrying what may be retried, with capped backoff.

        Returns the result, or raises FinalBrokerError, or AmbiguousBrokerError when
        ``ambiguous_ok`` is false (the caller must reconcile before retrying).
        """
        attempt = 0
        cfg = self.engine.config.hedging
        while True:
            if self.engine.stopping or not await self.engine.wait_for_broker():
                raise EngineStopped
            await self._verify_lease()
            try:
                result = await fn()
                self.engine.status.broker_error = None
                if self.engine.status.auth_required is not None:
                    self.engine.status.auth_required = None
                    log.warning("broker authorised again; hedging resumes")
                    self.engine.hedge_symbols(list(self.engine.books))
                return result
            except AuthenticationRequiredError as exc:
                if self.engine.status.auth_required is None:
                    log.error("%s: broker needs re-authorisation: %s", what, exc)
                self.engine.status.auth_required = str(exc)
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
                await asyncio.wait_for(self.engine.stop_event.wait(), delay)

    async def _verify_lease(self) -> None:
        """No broker call without the lease: a holder that lost it stops here, and one
        whose database does not answer waits (with backoff) until it can tell."""
        attempt = 0
        while True:
            try:
                await self.engine.store.verify_lease()
                return
            except StoreUnavailableError as exc:
                attempt += 1
                delay = self._retry_delay(attempt, None)
                if attempt == 1:
                    log.warning("no broker call until the database answers: %s", exc)
            except StoreError as exc:
                log.error("%s", exc)
                self.engine.fail(exc)
                raise EngineStopped from None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.stop_event.wait(), delay)
            if self.engine.stopping:
                raise EngineStopped

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.engine.config.hedging
        delay = backoff_delay(
            attempt + 1, max(cfg.poll_interval / 10, 0.05), cfg.retry_backoff_max, self.engine.rng
        )
        return max(delay, retry_after or 0.0)

    def _note_broker_error(self, what: str, exc: Exception, delay: float) -> None:
        self.engine.status.broker_error = f"{what}: {exc}"
        log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)

    async def _find(self, order: HedgeOrder) -> OrderUpdate | None:
        try:
            found: OrderUpdate | None = await self._call(
                f"find order {order.client_order_id}",
                functools.partial(self.engine.executor.find_order, order.client_order_id, order),
                ambiguous_ok=True,
            )
        except EngineStopped:
            raise asyncio.CancelledError from None
        return found

    async def _place(self, order: HedgeOrder, *, fresh: bool) -> OrderUpdate | None:
        """Place the order exactly once: after an ambiguous outcome, look before retrying.

        The session is checked again right before every broker call (a hedge decided
        at 15:59:59 may reach the broker after 16:00). ``fresh``: no broker call was
        ever made for this ``client_order_id`` (not a recovered intent), so an order
        whose session has passed is closed unplaced and decided anew for the session
        now (a market order after the close becomes a limit, a limit after its
        session waits to be priced again); otherwise it waits for its session.
        """
        cid = order.client_order_id
        place: Callable[[], Awaitable[OrderUpdate]]
        if isinstance(order, LimitOrder):
            executor = self.engine.executor
            if not isinstance(executor, ExtendedHoursExecutor):  # the broker changed since
                reason = f"broker {executor.name} cannot place limit orders"
                await self._close(order, OrderUpdate("", OrderState.FAILED, reason=reason))
                return None
            place = functools.partial(executor.place_limit_order, order)
        else:
            place = functools.partial(self.engine.executor.place_market_order, order)

        async def in_session() -> OrderUpdate:
            if not self._placeable(order, as_decided=fresh):  # no await from here to the call
                raise _SessionPassed
            return await place()

        while True:
            if fresh and not self._placeable(order, as_decided=True):
                await self._close_unplaced(order)
                return None
            if not await self._wait_placeable(order):
                return None
            try:
                placed: OrderUpdate = await self._call(
                    f"place {cid}", in_session, ambiguous_ok=False
                )
                return placed
            except EngineStopped:
                return None
            except _SessionPassed:
                log.warning("%s: its session ended before it reached the broker", cid)
            except AmbiguousBrokerError as exc:
                fresh = False  # the broker may have it: only ever the same cid again
                log.warning("placing %s had an unknown outcome (%s); asking the broker", cid, exc)
                found = await self._find(order)
                if found is not None:
                    return found
            except FinalBrokerError as exc:
                await self._close(order, OrderUpdate("", OrderState.FAILED, reason=str(exc)))
                return None
            except StoreError:  # the executor's own lease check (nothing was sent): stop
                raise
            except Exception as exc:  # a plugin bug: treat the outcome as unknown
                fresh = False
                log.exception("executor raised an unexpected error placing %s", cid)
                found = await self._find(order)
                if found is not None:
                    return found
                del exc

    def _placeable(self, order: HedgeOrder, *, as_decided: bool = False) -> bool:
        """May ``order`` go to the broker now? A market order only in regular hours (when
        sessions are in use); a limit while one of its symbol's sessions is open.
        ``as_decided``: and in the very session it was decided for."""
        ticker = order.symbol.ticker
        if isinstance(order, MarketOrder):
            return not self.engine.sessions.active or self.engine.regular_hours(ticker)
        current = self.engine.sessions.session(ticker, self.engine.now())[0].session
        if as_decided:
            return current is order.session
        return current is not Session.CLOSED or self.engine.status.market_open

    async def _wait_placeable(self, order: HedgeOrder) -> bool:
        """Until ``order`` may go out (a recovered intent at night waits for its session);
        False if the engine stops first."""
        while not self._placeable(order):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.stop_event.wait(), 0.5)
            if self.engine.stopping:
                return False
        return True

    async def _close_unplaced(self, order: HedgeOrder) -> None:
        """Book a fresh intent whose session passed before any broker call as cancelled
        with nothing filled; its shares go back to the book and are decided anew."""
        now = self.engine.sessions.session(order.symbol.ticker, self.engine.now())[0]
        reason = f"not placed: the session is {now.session.value} now"
        log.info("%s %s; deciding again", order.client_order_id, reason)
        await self._close(order, OrderUpdate("", OrderState.CANCELLED, reason=reason), requeue=True)

    async def _track(self, order: HedgeOrder, update: OrderUpdate) -> None:
        cfg = self.engine.config.hedging
        cid = order.client_order_id
        while True:
            update = self._sanitize(order, update)
            if update.state.terminal:
                await self._close(order, update)
                return
            await self._progress(order, update)
            reason = self._cancel_reason(order)
            if reason is not None:
                await self._cancel(order, update, reason)
                return
            delay = cfg.poll_interval + self.engine.rng.uniform(0, cfg.poll_jitter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.stop_event.wait(), delay)
            if self.engine.stopping:
                return
            try:
                update = await self._call(
                    f"status of {cid}",
                    functools.partial(self.engine.executor.order_status, update.broker_order_id),
                    ambiguous_ok=True,
                )
            except EngineStopped:
                return
            except FinalBrokerError as exc:
                # The broker refuses to tell us about an order it accepted: keep the
                # shares reserved (never re-hedge blindly) and keep asking.
                self.engine.status.broker_error = f"status of {cid}: {exc}"
                log.error("cannot read order %s: %s; will keep trying", cid, exc)

    async def _progress(self, order: HedgeOrder, update: OrderUpdate) -> None:
        """Book a partial fill the broker reports (cumulative), once."""
        book = self.engine.books[order.symbol.ticker]
        hedge = book.in_flight
        if hedge is None or update.filled_quantity <= hedge.filled:
            return
        settlement = book.progress(order.client_order_id, update.filled_quantity)
        progressed = HedgeProgressed(
            order.client_order_id,
            order.side,
            update.filled_quantity,
            update.average_price,
            settlement.hedged,
        )
        await self.engine.append([position_event(order.symbol, progressed)])
        checkpoint("partial_booked")

    # -- extended hours: regular-hours guard, repricing, the regular open ---------------

    def _extended(self) -> ExtendedHoursExecutor:
        executor = self.engine.executor
        if not isinstance(executor, ExtendedHoursExecutor):  # a limit intent, another broker
            raise FinalBrokerError(f"broker {executor.name} cannot place or cancel limit orders")
        return executor

    def _cancel_reason(self, order: HedgeOrder) -> str | None:
        """Why a live limit must be cancelled now: the regular open, or its age."""
        if not isinstance(order, LimitOrder) or not self.engine.sessions.active:
            return None
        cfg = self.engine.config.extended_hours
        now = self.engine.now()
        ticker = order.symbol.ticker
        current, following = self.engine.sessions.session(ticker, now)
        regular = self.engine.sessions.regular(ticker, now)
        if regular or (regular is None and self.engine.status.market_open):
            return "regular_open"  # the calendar first: just after 16:00 the clock may lag
        live = self.limits.get(order.client_order_id)
        if live is None:
            return None
        timeout = cfg.reprice_timeout
        if current.session.extended and flatten_progress(
            now, flatten_close(current, following), cfg.close_flatten_window
        ) is not None:
            timeout = cfg.close_flatten_reprice_timeout
        if (now - live[1]).total_seconds() >= timeout:
            return "reprice"
        return None

    async def _cancel(
        self, order: HedgeOrder, update: OrderUpdate, reason: str, *, requested: bool = False
    ) -> None:
        """Cancel, confirm, book: each step durable before the next broker call."""
        cid, broker_id = order.client_order_id, update.broker_order_id
        if not requested:
            request = HedgeCancelRequested(cid, broker_id, reason)
            await self.engine.append([position_event(order.symbol, request)])
            checkpoint("regular_open" if reason == "regular_open" else "cancel_requested")
        log.info("cancelling %s (%s)", cid, reason)
        try:
            update = await self._call(
                f"cancel {cid}",
                functools.partial(self._extended().cancel_order, broker_id),
                ambiguous_ok=True,
            )
        except EngineStopped:
            return
        except FinalBrokerError as exc:  # not cancelable: it ended or will; read it
            log.warning("cancel of %s refused (%s); reading the order", cid, exc)
        cfg = self.engine.config.hedging
        while True:
            update = self._sanitize(order, update)
            if update.state.terminal:
                break
            await self._progress(order, update)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.stop_event.wait(), cfg.poll_interval)
            if self.engine.stopping:
                return
            try:
                update = await self._call(
                    f"status of {cid}",
                    functools.partial(self.engine.executor.order_status, broker_id),
                    ambiguous_ok=True,
                )
            except EngineStopped:
                return
            except FinalBrokerError as exc:
                self.engine.status.broker_error = f"status of {cid}: {exc}"
                log.error("cannot read order %s: %s; will keep trying", cid, exc)
        checkpoint("cancel_confirmed")
        await self._close(order, update, requeue=True)

    def _sanitize(self, order: HedgeOrder, update: OrderUpdate) -> OrderUpdate:
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
        self,
        order: HedgeOrder,
        update: OrderUpdate,
        before: Sequence[NewEvent] = (),
        *,
        requeue: bool = False,
    ) -> None:
        """Book the end of an order. ``requeue``: a limit the engine cancelled (or one the
        broker ended, as ``day`` orders end at 20:00) is no failure: hedge the rest at once."""
        book = self.engine.books[order.symbol.ticker]
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
        await self.engine.append([*before, position_event(order.symbol, event)])
        symbol_state = self.engine.symbols.setdefault(order.symbol.ticker, SymbolState())
        requeue = requeue or (isinstance(order, LimitOrder) and state is OrderState.CANCELLED)
        if requeue and state is not OrderState.FILLED:
            checkpoint("cancel_booked")
            self.engine.hedge_symbols([order.symbol.ticker])
        elif state is OrderState.FILLED:
            self.engine.status.hedges_filled += 1
            symbol_state.failures = 0
            self.engine.hedge_symbols([order.symbol.ticker])
        else:
            self.engine.status.hedges_failed += 1
            symbol_state.failures += 1
            delay = backoff_delay(
                symbol_state.failures,
                self.engine.config.hedging.failure_backoff,
                self.engine.config.hedging.failure_backoff_max,
                self.engine.rng,
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

    def _schedule(self, ticker: str, state: SymbolState, delay: float) -> None:
        if state.timer is not None:
            state.timer.cancel()

        def fire() -> None:
            state.timer = None
            self.engine.hedge_symbols([ticker])

        state.timer = asyncio.get_running_loop().call_later(delay, fire)

"""A hedge order's life: placed exactly once, looked up after doubt, polled to its end.

One task per in-flight order. Placement happens only after the intent is
durable and only while this process holds the database's lease; an ambiguous
outcome is resolved by asking the broker for the ``client_order_id`` before
anything is placed again (recovery does the same on start). Partial fills and
the terminal state are events; a failed hedge backs its symbol off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import attrs

from ..backoff import backoff_delay
from ..domain.accumulator import Settlement
from ..domain.events import (
    HedgeClosed,
    HedgeProgressed,
    HedgeSubmitted,
    NewEvent,
    position_event,
)
from ..domain.numbers import ZERO
from ..domain.orders import MarketOrder, OrderState, OrderUpdate
from ..errors import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    BrokerError,
    FinalBrokerError,
    RetryableBrokerError,
    StoreError,
)
from ..protocols import HedgeOrderRecord
from .state import EngineContext, EngineStopped, SymbolState, log

T = TypeVar("T")


class OrderLifecycle:
    def __init__(self, engine: EngineContext) -> None:
        self.engine = engine
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.placed_at: dict[str, float] = {}

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

    def spawn(self, order: MarketOrder, recovering: HedgeOrderRecord | None = None) -> None:
        self.placed_at[order.client_order_id] = time.perf_counter()
        task = asyncio.create_task(
            self._drive(order, recovering), name=f"order-{order.client_order_id}"
        )
        self.tasks[order.client_order_id] = task
        task.add_done_callback(functools.partial(self._done, order.client_order_id))

    def _done(self, cid: str, task: asyncio.Task[None]) -> None:
        self.tasks.pop(cid, None)
        self.placed_at.pop(cid, None)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("order task %s failed: %s", cid, exc)
            if isinstance(exc, StoreError):
                self.engine.fail(exc)

    async def _drive(self, order: MarketOrder, recovering: HedgeOrderRecord | None) -> None:
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
                self.engine.status.hedges_placed += 1
            submitted = position_event(order.symbol, HedgeSubmitted(cid, update.broker_order_id))
            update = self._sanitize(order, update)
            if update.state.terminal:  # filled or refused at once: one commit for both facts
                await self._close(order, update, before=[submitted])
                return
            await self.engine.append([submitted])
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
        """No broker call without the lease: a holder that lost it stops here."""
        try:
            await self.engine.store.verify_lease()
        except StoreError as exc:
            log.error("%s", exc)
            self.engine.fail(exc)
            raise EngineStopped from None

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.engine.config.hedging
        delay = backoff_delay(
            attempt + 1, max(cfg.poll_interval / 10, 0.05), cfg.retry_backoff_max, self.engine.rng
        )
        return max(delay, retry_after or 0.0)

    def _note_broker_error(self, what: str, exc: Exception, delay: float) -> None:
        self.engine.status.broker_error = f"{what}: {exc}"
        log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)

    async def _find(self, order: MarketOrder) -> OrderUpdate | None:
        try:
            found: OrderUpdate | None = await self._call(
                f"find order {order.client_order_id}",
                functools.partial(self.engine.executor.find_order, order.client_order_id, order),
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
                    functools.partial(self.engine.executor.place_market_order, order),
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
            except StoreError:  # the executor's own lease check (nothing was sent): stop
                raise
            except Exception as exc:  # a plugin bug: treat the outcome as unknown
                log.exception("executor raised an unexpected error placing %s", cid)
                found = await self._find(order)
                if found is not None:
                    return found
                del exc

    async def _track(self, order: MarketOrder, update: OrderUpdate) -> None:
        cfg = self.engine.config.hedging
        cid = order.client_order_id
        while True:
            update = self._sanitize(order, update)
            if update.state.terminal:
                await self._close(order, update)
                return
            book = self.engine.books[order.symbol.ticker]
            hedge = book.in_flight
            if hedge is not None and update.filled_quantity > hedge.filled:
                settlement = book.progress(cid, update.filled_quantity)
                await self.engine.append(
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
        if state is OrderState.FILLED:
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

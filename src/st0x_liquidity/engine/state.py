"""What the engine's parts share: its status, per-symbol state, and the context they see.

The parts (ingest pipeline, order lifecycle, market gate) are given the
engine as an :class:`EngineContext`, the few things each needs of it, so they
depend on that interface and not on the engine module.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from ..config import AppConfig
from ..domain.accumulator import SymbolBook
from ..domain.events import NewEvent, StoredEvent
from ..domain.orders import HedgeOrder
from ..domain.sessions import Session, SessionWindow
from ..domain.symbols import Symbol
from ..protocols import Executor, FillSource, PositionStore

log = logging.getLogger("st0x_liquidity.engine")


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
    blocked: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    """Hedges the risk gate refused, by symbol: side, quantity, notional, limit, reason, since."""
    trading_state: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    """``*`` (the default) and every symbol with a state of its own: state, reason."""
    reconciliation: dict[str, Any] | None = None
    """The last reconciliation (``ReconciliationChecked`` as JSON, plus ``at``)."""
    calendar_error: str | None = None
    """Why the broker calendar could not be read (extended hours wait for it)."""


@attrs.define
class SymbolState:
    """A symbol's failed-hedge backoff."""

    failures: int = 0
    cooldown_until: float = 0.0
    timer: asyncio.TimerHandle | None = None


class SessionView(Protocol):
    """What the engine's parts ask of the session tracker (engine/sessions.py)."""

    @property
    def active(self) -> bool:
        """Extended hours are configured and the executor can trade them."""

    def opted_in(self, ticker: str) -> bool: ...

    def session(self, ticker: str, now: datetime) -> tuple[SessionWindow, SessionWindow | None]:
        """The symbol's current window (CLOSED when none of its sessions is open) and next."""

    def enabled(self, ticker: str) -> frozenset[Session]: ...

    def regular(self, ticker: str, now: datetime) -> bool | None:
        """The calendar's word on regular hours now (None: no calendar in use)."""


class EngineStopped(Exception):
    """The engine is stopping: the broker call was not made."""


class EngineContext(Protocol):
    config: AppConfig
    store: PositionStore
    executor: Executor
    source: FillSource
    books: dict[str, SymbolBook]
    status: EngineStatus
    symbols: dict[str, SymbolState]
    rng: random.Random
    stop_event: asyncio.Event

    @property
    def sessions(self) -> SessionView: ...

    def now(self) -> datetime:
        """The time sessions are judged by (the dry-run broker's clock when it simulates one)."""

    def regular_hours(self, ticker: str) -> bool:
        """A market order for ``ticker`` may go out now (the clock and the calendar agree)."""

    @property
    def stopping(self) -> bool: ...

    async def wait_for_broker(self) -> bool:
        """Until the executor has started (True), or the engine stops (False)."""

    def fail(self, exc: BaseException) -> None:
        """Stop the engine; ``run`` raises ``exc`` once everything has ended."""

    def book(self, symbol: Symbol) -> SymbolBook: ...

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]: ...

    def commit_in_background(
        self, events: Sequence[NewEvent], then: Any
    ) -> asyncio.Future[list[StoredEvent]]: ...

    def decide_many(self, symbols: Sequence[str], events: list[NewEvent]) -> list[HedgeOrder]: ...

    def hedge_symbols(self, symbols: Sequence[str]) -> None: ...

    def spawn_order(self, order: HedgeOrder) -> None: ...


def consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a future's outcome so an unawaited failure is not reported twice."""
    if not future.cancelled():
        future.exception()


def log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed: %s", task.get_name(), task.exception())

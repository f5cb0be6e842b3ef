"""What a plugin's long-running service is given: a small facade, not the app itself.

``st0x_app_services`` implementations (the dashboard, the rebalancer, a
third party's service) see the config, the adapters through their protocols,
and the engine's controls, so the app's wiring can change without breaking
them and no plugin reaches into the engine's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from .config import AppConfig
    from .domain.events import StoredEvent
    from .engine.state import EngineStatus
    from .protocols import Executor, FillSource, PositionStore


class EngineControl(Protocol):
    """The running engine as a service sees it."""

    @property
    def status(self) -> EngineStatus: ...

    @property
    def stopping(self) -> bool: ...

    def add_listener(self, listener: Callable[[Sequence[StoredEvent]], None]) -> None:
        """Called with every batch of committed events, in commit order."""

    def pause(self, reason: str) -> None:
        """Circuit breaker: no new hedges; fills are still recorded."""

    def resume(self) -> None: ...

    def extended_hours(self) -> dict[str, Any]:
        """Extended hours: each opted-in symbol's session now and next, when it can be
        hedged next, its hedgeable hours per week, and the live limit orders with their
        reference source and age (``active`` false when nothing is opted in)."""

    def fail(self, exc: BaseException) -> None:
        """Stop the run; ``run`` then exits with ``exc`` (a ConfigError: one line)."""

    async def set_trading_state(
        self, symbol: str, state: str, reason: str, actor: str, remote: str | None = None
    ) -> None:
        """``active``, ``reducing`` or ``halted`` for a base symbol, or ``*`` for all."""


@attrs.frozen
class AppServices:
    config: AppConfig
    store: PositionStore
    executor: Executor
    source: FillSource
    engine: EngineControl
    extras: dict[str, Any]
    """Shared between services of one run (e.g. ``dashboard_url``)."""

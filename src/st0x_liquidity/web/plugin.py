"""Built-in plugin: ``[dashboard]`` and the service that serves it beside the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from ..config import Secret
from ..errors import ConfigError
from ..hookspecs import hookimpl
from ..registry import ConfigSection
from ..store.breaker_log import BreakerLog
from ..validators import positive

if TYPE_CHECKING:
    from ..services import AppServices

log = logging.getLogger(__name__)


def _port(_i: object, _attr: object, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError("port must be between 0 and 65535 (0 picks a free port)")


@attrs.frozen
class DashboardConfig:
    """``[dashboard]``: the operations page, /health and /metrics, served by the bot."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=_port)
    token: Secret | None = None
    """Needed to pause/resume hedging (and for every page when not bound to localhost)."""
    stuck_after: float = attrs.field(default=120.0, validator=positive)
    """Seconds an open hedge may go without progress before it is flagged stuck."""
    stall_after: float = attrs.field(default=300.0, validator=positive)
    """Seconds without any input from a running fill source before it is flagged stalled."""
    recent_fills: int = 200
    status_interval: float = attrs.field(default=2.0, validator=positive)
    clear_after: float = attrs.field(default=30.0, validator=positive)
    """Seconds a failed /health check or an alert must stay good before it clears."""
    optional: bool = False
    """Run without the dashboard when its port cannot be bound (default: refuse to run)."""


@hookimpl
def st0x_register_config_sections(register: Callable[[ConfigSection], None]) -> None:
    register(ConfigSection("dashboard", DashboardConfig))


@hookimpl
def st0x_app_services(app: AppServices) -> Sequence[Callable[[], Awaitable[None]]] | None:
    config = app.config.sections.get("dashboard")
    if not isinstance(config, DashboardConfig) or not config.enabled:
        return None
    return [lambda: serve_dashboard(app, config)]


@hookimpl
def st0x_standby_services(app: AppServices) -> Sequence[Callable[[], Awaitable[None]]] | None:
    """A standby serves the page, /health and /metrics read-only (the breaker is the leader's)."""
    config = app.config.sections.get("dashboard")
    if not isinstance(config, DashboardConfig) or not config.enabled:
        return None
    return [lambda: serve_dashboard(app, config)]


async def serve_dashboard(
    app: AppServices, config: DashboardConfig, started: asyncio.Future[str] | None = None
) -> None:
    """Serve until cancelled. ``started`` (tests) receives the URL once listening."""
    from ..store.read_connection import ReadConnection
    from .server import Dashboard, bind
    from .state import DashboardState

    try:
        sock = bind(config.host, config.port)
    except OSError as exc:
        problem = f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        if config.optional:
            log.error("dashboard %s; the bot runs without it ([dashboard] optional = true)", problem)
            return
        app.engine.fail(
            ConfigError(
                "dashboard.port",
                f"{problem} (free the port, pick another, or set [dashboard] optional = true)",
            )
        )
        return
    try:
        reader = await ReadConnection.open(app.config.database)
    except BaseException:
        sock.close()
        raise
    state = DashboardState(
        app,
        reader.reads,
        BreakerLog(app.config.database),
        stuck_after=config.stuck_after,
        stall_after=config.stall_after,
        recent_fills=config.recent_fills,
        clear_after=config.clear_after,
    )
    try:
        await state.open()
        await state.load_latency_history()
    except BaseException:
        sock.close()
        await reader.close()
        raise
    dashboard = Dashboard(
        state,
        config.host,
        config.port,
        None if config.token is None else config.token.get(),
        status_interval=config.status_interval,
    )
    app.engine.add_listener(dashboard.on_commit)
    follower: asyncio.Task[None] | None = None
    try:
        url = await dashboard.start(sock)
        app.extras["dashboard_url"] = url
        if started is not None and not started.done():
            started.set_result(url)
        follower = asyncio.create_task(dashboard.follow(), name="dashboard-follow")
        await follower
    finally:
        if follower is not None:
            follower.cancel()
            # Its own failure is already on its way out: the page must stop regardless
            # (a standby taking over binds the same port next).
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower
        await dashboard.stop()
        await reader.close()

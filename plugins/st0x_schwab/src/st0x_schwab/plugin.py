"""pluggy hook implementations: the ``schwab`` executor type and the ``schwab`` CLI."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from st0x_liquidity import ExecutorContext, ExecutorType, hookimpl

from .cli import add_schwab_commands
from .config import SchwabConfig
from .executor import SchwabExecutor


def _factory(config: SchwabConfig, context: ExecutorContext) -> SchwabExecutor:
    return SchwabExecutor(config, context.store)


@hookimpl
def st0x_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            name="schwab",
            config_class=SchwabConfig,
            factory=_factory,
            description="Charles Schwab Trader API (OAuth; whole shares; AM/PM limit orders)",
        )
    )


@hookimpl
def st0x_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_schwab_commands(subparsers)


AUTH_STATUS_KEY = "schwab_auth"


def auth_status_service(app: Any, interval: float = 60.0) -> Callable[[], Awaitable[None]]:
    """Keep ``app.extras["schwab_auth"]`` current for dashboards and metrics.

    The value is a dict: ``authorized``, ``authorized_at``, ``access_expires_at``,
    ``refresh_expires_at`` (ISO-8601 or None), ``expires_soon`` (refresh token
    ends within ``refresh_warning``) and ``problem`` (what to do, or None).
    """
    executor: SchwabExecutor = app.executor

    async def publish() -> None:
        while True:
            status = await executor.auth_status()
            app.extras[AUTH_STATUS_KEY] = {
                "authorized": status.authorized,
                "authorized_at": _iso(status.authorized_at),
                "access_expires_at": _iso(status.access_expires_at),
                "refresh_expires_at": _iso(status.refresh_expires_at),
                "expires_soon": status.expires_soon,
                "problem": status.problem,
            }
            await asyncio.sleep(interval)

    return publish


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


@hookimpl
def st0x_app_services(app: Any) -> Sequence[Callable[[], Awaitable[None]]] | None:
    if isinstance(getattr(app, "executor", None), SchwabExecutor):
        return [auth_status_service(app)]
    return None

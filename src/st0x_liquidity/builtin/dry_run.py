"""Registers the ``dry-run`` executor (built-in plugin).

The plain pretend broker lives in :mod:`.dry_run_executor`; with ``sessions =
true`` the one that also trades extended hours, :mod:`.dry_run_sessions`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import resolve_path
from ..hookspecs import hookimpl
from ..registry import ExecutorContext, ExecutorType
from .dry_run_executor import DryRunConfig, DryRunExecutor
from .dry_run_sessions import DryRunSessionsExecutor

__all__ = ["DryRunConfig", "DryRunExecutor", "DryRunSessionsExecutor"]


def _factory(config: DryRunConfig, context: ExecutorContext) -> DryRunExecutor:
    path: Path | str
    if config.state_path is not None:
        path = resolve_path(context.app, config.state_path)
    elif context.app.postgres is not None:
        path = context.app.database  # its tables in the bot's database: a standby sees them
    else:
        db = context.app.database_path
        path = db.with_name(db.name + ".dry-run.sqlite")
    if config.sessions:
        return DryRunSessionsExecutor(config, path)
    return DryRunExecutor(config, path)


@hookimpl
def st0x_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            name="dry-run",
            config_class=DryRunConfig,
            factory=_factory,
            description="simulated broker; records orders in a local file",
        )
    )

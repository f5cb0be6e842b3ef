"""Hook specifications: the only ways a plugin extends st0x-liquidity.

Registration hooks receive a ``register`` callable so one plugin may add several
things and the host keeps the record (the pattern of datasette and ``llm``).
The built-in dry-run executor and replay source register through these same
hooks, which keeps the hooks honest: if the built-ins can live with them, so can
a third party.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .config import AppConfig
    from .protocols import Custodian
    from .registry import ConfigSection, ExecutorType, FillSourceType
    from .services import AppServices

PROJECT = "st0x_liquidity"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def st0x_register_executors(register: Callable[[ExecutorType], None]) -> None:
    """Register executor types; ``[broker] type`` selects one by name."""


@hookspec
def st0x_register_fill_sources(register: Callable[[FillSourceType], None]) -> None:
    """Register fill source types; ``[source] type`` selects one by name."""


@hookspec
def st0x_register_config_sections(register: Callable[[ConfigSection], None]) -> None:
    """Register extra top-level config sections (e.g. ``[rebalancing]``)."""


@hookspec
def st0x_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add CLI subcommands.

    Create a parser with ``subparsers.add_parser(...)`` and give it a handler with
    ``parser.set_defaults(handler=fn)``; ``fn(args)`` returns the exit status.
    """


@hookspec
def st0x_app_services(app: AppServices) -> Sequence[Callable[[], Awaitable[None]]] | None:
    """Long-running services to run beside the engine in ``run`` (dashboard, rebalancer).

    Return coroutine functions; each is started after recovery begins and is
    cancelled when the engine stops. ``app`` (:class:`~st0x_liquidity.services.AppServices`)
    gives the config (including this plugin's own section in
    ``app.config.sections``), the store, the executor, the source, the engine's
    controls (status, listeners, pause/resume) and ``extras`` shared between
    services.
    """


@hookspec
def st0x_standby_services(app: AppServices) -> Sequence[Callable[[], Awaitable[None]]] | None:
    """Read-only services a **standby** runs while it waits for the lease (docs/operations.md).

    Like :func:`st0x_app_services`, but the engine does not run, no broker is
    connected and the store refuses writes: only what reads and shows belongs
    here (the dashboard, ``/health``, ``/metrics``). Cancelled when the standby
    takes over; the leader's services then start from ``st0x_app_services``.
    ``app.extras["role"]`` is the process's :class:`~st0x_liquidity.ha.role.Role`.
    """


@hookspec(firstresult=True)
def st0x_custodian(config: AppConfig) -> Custodian | None:
    """The issuer custody for rebalancing with this config's broker, or None.

    The first plugin that recognises ``config.broker_type`` returns one (e.g.
    the Alpaca Broker API plugin for ``alpaca-broker-api``).
    """

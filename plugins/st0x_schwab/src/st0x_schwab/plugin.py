"""pluggy hook implementations: the ``schwab`` executor type and the ``schwab`` CLI."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from st0x_liquidity import ExecutorContext, ExecutorType
from st0x_liquidity.hookspecs import hookimpl

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
            description="Charles Schwab Trader API (OAuth; whole shares only)",
        )
    )


@hookimpl
def st0x_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_schwab_commands(subparsers)

"""The hook implementations: the only module the core loads (by entry point)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from st0x_liquidity import ExecutorType, hookimpl, load_config, load_registry

from .executor import ExamplePaperConfig, make_executor, read_orders, state_path_for


@hookimpl
def st0x_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            name="example-paper",
            config_class=ExamplePaperConfig,
            factory=make_executor,
            description="paper broker from docs/plugins.md; fills at the reference price",
        )
    )


@hookimpl
def st0x_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "example-paper-orders", help="print the orders the example-paper broker holds (JSON)"
    )
    parser.add_argument("--config-file", required=True, type=Path, help="TOML config file")
    parser.set_defaults(handler=_orders_command)


def _orders_command(args: argparse.Namespace) -> int:
    # A ConfigError raised here becomes one "config error: ..." line and exit 2.
    config = load_config(args.config_file, load_registry())
    if not isinstance(config.broker, ExamplePaperConfig):
        print(f"[broker] type is {config.broker_type!r}, not 'example-paper'")
        return 2
    orders = read_orders(state_path_for(config.broker, config))
    print(json.dumps(sorted(orders.values(), key=lambda o: o["client_order_id"]), indent=2))
    return 0

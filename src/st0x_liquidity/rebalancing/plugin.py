"""Built-in plugin: ``[rebalancing]``, the ``inventory`` command and the rebalancer service."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..domain.numbers import fmt
from ..errors import StoreError
from ..hookspecs import hookimpl
from ..registry import ConfigSection
from .config import RebalancingConfig
from .inventory import AssetInventory, InventoryBook
from .keeper import InventoryKeeper
from .log import RebalancingLog
from .triggers import decide

if TYPE_CHECKING:
    from ..app import App


@hookimpl
def st0x_register_config_sections(register: Callable[[ConfigSection], None]) -> None:
    register(ConfigSection("rebalancing", RebalancingConfig))


@hookimpl
def st0x_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inventory",
        help="inventory per asset: onchain (vault+wallet) vs offchain, available vs in flight",
    )
    parser.add_argument("--config-file", required=True, type=Path, help="TOML config file")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--json", action="store_true", help="stable JSON output")
    parser.set_defaults(handler=_cmd_inventory)


@hookimpl
def st0x_app_services(app: App) -> Sequence[Callable[[], Awaitable[None]]] | None:
    section = app.config.sections.get("rebalancing")
    if section is None:
        return None
    from .service import Rebalancer

    rebalancer = Rebalancer(app.config.database_path, section, app.executor)
    app.extras["rebalancer"] = rebalancer
    app.engine.add_listener(lambda _stored: rebalancer.wake())
    return [rebalancer.run]


def inventory_json(book: InventoryBook, config: RebalancingConfig) -> dict[str, Any]:
    now = datetime.now(UTC)

    def opt(value: Any) -> str | None:
        return None if value is None else fmt(value)

    rows = []
    for asset in sorted(book.assets):
        inv: AssetInventory = book.assets[asset]
        rules = config.rules(asset)
        decision = decide(inv, rules, now)
        rows.append(
            {
                "asset": asset,
                "onchain": {
                    "available": fmt(inv.onchain.available),
                    "inflight": fmt(inv.onchain.inflight),
                    "vault": opt(inv.vault),
                    "wallet": opt(inv.wallet),
                },
                "offchain": {
                    "available": fmt(inv.offchain.available),
                    "inflight": fmt(inv.offchain.inflight),
                },
                "onchain_share": opt(inv.onchain_share),
                "band": {
                    "target": fmt(rules.band.target),
                    "lower": fmt(rules.band.lower),
                    "upper": fmt(rules.band.upper),
                },
                "active_operation": inv.active_operation,
                "would": decision.action.value if decision.action else None,
                "would_quantity": fmt(decision.quantity) if decision.action else None,
                "reason": decision.reason,
            }
        )
    return {
        "assets": rows,
        "core_position": book.core_position,
        "log_position": book.log_position,
    }


def _cmd_inventory(args: argparse.Namespace) -> int:
    from ..cli import load

    config = load(args)
    if not config.database_path.exists():
        raise StoreError(f"no database at {config.database_path} (has `run` been started?)")
    section: RebalancingConfig = config.sections.get("rebalancing") or RebalancingConfig()

    async def go() -> InventoryBook:
        log = RebalancingLog(config.database_path)
        await log.open()
        try:
            return await InventoryKeeper(log).refresh()
        finally:
            await log.close()

    data = inventory_json(asyncio.run(go()), section)
    if args.json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print(
        f"{'ASSET':<8} {'ONCHAIN':>16} {'IN FLIGHT':>12} {'OFFCHAIN':>16} {'IN FLIGHT':>12} "
        f"{'SHARE':>7} {'BAND':>11}  STATUS"
    )
    for row in data["assets"]:
        share = row["onchain_share"]
        share_text = str(Decimal(share).quantize(Decimal("0.001"))) if share is not None else "-"
        band = f"{row['band']['lower']}-{row['band']['upper']}"
        status = row["active_operation"] or (
            f"would {row['would']} {row['would_quantity']}" if row["would"] else row["reason"]
        )
        print(
            f"{row['asset']:<8} {row['onchain']['available']:>16} {row['onchain']['inflight']:>12} "
            f"{row['offchain']['available']:>16} {row['offchain']['inflight']:>12} "
            f"{share_text:>7} {band:>11}  {status}"
        )
    return 0

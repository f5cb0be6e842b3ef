"""Built-in plugin: ``[rebalancing]``, the ``inventory`` command and the rebalancer service."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..domain.numbers import fmt, to_decimal
from ..domain.symbols import Symbol
from ..errors import ConfigError, StoreError
from ..hookspecs import hookimpl
from ..registry import ConfigSection
from .config import RebalancingConfig
from .inventory import USDC, AssetInventory, InventoryBook
from .keeper import InventoryKeeper
from .log import RebalancingLog
from .operations import list_operations
from .state import TO_OFFCHAIN, TO_ONCHAIN, OperationState
from .triggers import decide

USDC_COMMANDS = {"usdc-to-onchain": TO_ONCHAIN, "usdc-to-offchain": TO_OFFCHAIN}

if TYPE_CHECKING:
    from ..config import AppConfig
    from ..services import AppServices

logger = logging.getLogger(__name__)


@hookimpl
def st0x_register_config_sections(register: Callable[[ConfigSection], None]) -> None:
    register(ConfigSection("rebalancing", RebalancingConfig))


@hookimpl
def st0x_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..cli import config_parent

    parser = subparsers.add_parser(
        "inventory",
        parents=[config_parent()],
        help="inventory per asset: onchain (vault+wallet) vs offchain, available vs in flight",
    )
    parser.add_argument("--json", action="store_true", help="stable JSON output")
    parser.set_defaults(handler=_cmd_inventory)

    rebalance = subparsers.add_parser(
        "rebalance",
        parents=[config_parent()],
        help="list, inspect, start, retry and abandon mint/redeem/USDC operations",
        description=(
            "Operations go through the same database and code as the bot: a running bot "
            "sees (and drives) operations started here."
        ),
    )
    rebalance.add_argument("--json", action="store_true", help="JSON output")
    actions = rebalance.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="all operations, or one with its events")
    status.add_argument("operation_id", nargs="?")
    for kind in ("mint", "redeem"):
        start = actions.add_parser(kind, help=f"{kind} QTY tokens of SYMBOL now")
        start.add_argument("symbol")
        start.add_argument("quantity")
        start.add_argument("--no-run", action="store_true", help="only record it (the bot runs it)")
    for action, where in (
        ("usdc-to-onchain", "broker to the Base vault"),
        ("usdc-to-offchain", "Base vault to the broker"),
    ):
        start = actions.add_parser(action, help=f"move QTY USDC from the {where} now (CCTP)")
        start.add_argument("quantity")
        start.add_argument("--no-run", action="store_true", help="only record it (the bot runs it)")
    retry = actions.add_parser("retry", help="start a new operation like a failed/abandoned one")
    retry.add_argument("operation_id")
    retry.add_argument("--no-run", action="store_true")
    abandon = actions.add_parser("abandon", help="end an operation without further steps")
    abandon.add_argument("operation_id")
    abandon.add_argument("--reason", default="abandoned by the operator")
    resume = actions.add_parser("resume", help="drive every unfinished operation to its end")
    del resume
    rebalance.set_defaults(handler=_cmd_rebalance)


@hookimpl
def st0x_app_services(app: AppServices) -> Sequence[Callable[[], Awaitable[None]]] | None:
    section: RebalancingConfig | None = app.config.sections.get("rebalancing")
    if section is None:
        return None
    from .service import Rebalancer

    rebalancer = Rebalancer(app.config.database, section, app.executor)
    app.extras["rebalancer"] = rebalancer
    app.engine.add_listener(lambda _stored: rebalancer.wake())

    async def run() -> None:
        if section.rpc_url and section.orderbook and section.enabled and not section.dry_run:
            from .runtime import build_runner, onchain_reader

            try:
                runner = await build_runner(app.config, rebalancer.log)
            except ConfigError as exc:
                logger.error("rebalancing cannot act (inventory and decisions only): %s", exc)
            else:
                runner.book = rebalancer.keeper.book
                rebalancer.runner = runner
                rebalancer.starter = rebalancer._start_operation
                rebalancer.onchain = onchain_reader(runner, rebalancer.keeper.book)
        await rebalancer.run()

    return [run]


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
    _require_database(config)
    section: RebalancingConfig = config.sections.get("rebalancing") or RebalancingConfig()

    async def go() -> InventoryBook:
        log = RebalancingLog(config.database)
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


def _state_json(state: OperationState) -> dict[str, Any]:
    return {
        "operation_id": state.operation_id,
        "kind": state.kind,
        "asset": state.asset,
        "quantity": fmt(state.quantity),
        "origin": state.origin,
        "requested_at": state.requested_at.isoformat(),
        "status": state.status,
        "reason": state.ended.reason if state.ended else None,
        "done": state.done,
        "intended": {
            k: {kk: vv for kk, vv in v.items() if kk != "raw"} for k, v in state.intended.items()
        },
    }


def _requested(args: argparse.Namespace) -> tuple[str, str, Decimal]:
    """(kind, asset, quantity) of a ``rebalance mint|redeem|usdc-to-...`` command."""
    quantity = to_decimal(args.quantity, what="quantity")
    if args.action in USDC_COMMANDS:
        return USDC_COMMANDS[args.action], USDC, quantity
    return args.action, Symbol.parse(args.symbol).ticker, quantity


def _cmd_rebalance(args: argparse.Namespace) -> int:
    from ..cli import load

    config = load(args)
    _require_database(config)

    async def go() -> int:
        log = RebalancingLog(config.database)
        await log.open()
        runner = None
        try:
            if args.action == "status":
                return await _status(log, args)
            from .runtime import build_runner

            runner = await build_runner(config, log)
            keeper = InventoryKeeper(log)
            book = await keeper.refresh()
            runner.core_position = book.core_position
            runner.book = book
            if args.action == "abandon":
                await runner.abandon(args.operation_id, args.reason)
                print(f"{args.operation_id} abandoned")
                return 0
            if args.action == "resume":
                open_ops = [s for s in await list_operations(log) if s.ended is None]
                code = 0
                for s in open_ops:
                    final = await runner.run(s.operation_id)
                    print(f"{final.operation_id} {final.status}")
                    code = code or (0 if final.status == "completed" else 1)
                for landed in await runner.land_all():
                    print(f"{landed} landed (its USDC in limbo was minted)")
                return code
            if args.action == "retry":
                old = await runner.load(args.operation_id)
                if old.ended is None or old.ended.outcome == "completed":
                    print(f"{args.operation_id} is not failed or abandoned", file=sys.stderr)
                    return 1
                kind, asset, quantity = old.kind, old.asset, old.quantity
            else:
                kind, asset, quantity = _requested(args)
            busy = book.get(asset).active_operation
            if busy:
                print(f"{asset} already has operation {busy} in flight", file=sys.stderr)
                return 1
            try:
                operation_id = await runner.request(kind, asset, quantity, "cli")
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(operation_id, flush=True)
            if args.no_run:
                return 0
            final = await runner.run(operation_id)
            print(
                f"{operation_id} {final.status}"
                + (f": {final.ended.reason}" if final.ended and final.ended.reason else "")
            )
            return 0 if final.status == "completed" else 1
        finally:
            if runner is not None:
                await runner.close()
                await runner.custodian.close()
            await log.close()

    return asyncio.run(go())


async def _status(log: RebalancingLog, args: argparse.Namespace) -> int:
    states = await list_operations(log)
    if args.operation_id:
        states = [s for s in states if s.operation_id == args.operation_id]
        if not states:
            print(f"no operation {args.operation_id}", file=sys.stderr)
            return 1
    rows = [_state_json(s) for s in states]
    if args.json:
        json.dump(rows, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    elif not rows:
        print("no rebalancing operations yet")
    else:
        for r in rows:
            print(
                f"{r['operation_id']}  {r['kind']:<6} {r['asset']:<6} "
                f"{r['quantity']:>14}  {r['status']}"
                + (f"  ({r['reason']})" if r["reason"] else "")
            )
    return 0


def _require_database(config: AppConfig) -> None:
    if config.postgres is None and not config.database_path.exists():
        raise StoreError(f"no database at {config.database_path} (has `run` been started?)")

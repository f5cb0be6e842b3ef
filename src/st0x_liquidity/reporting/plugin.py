"""Built-in plugin: the ``report`` command (FIFO P&L into ``metrics_pnl``) and ``[report]``.

``report --config-file FILE`` runs beside the bot as its own process with its
own connection: SQLite's WAL (PostgreSQL's MVCC) lets it read while the bot
writes, and its only writes are short transactions on its own tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from ..domain.numbers import EXACT, fmt
from ..errors import StoreError
from ..hookspecs import hookimpl
from ..registry import ConfigSection
from ..tables import money, table

if TYPE_CHECKING:
    from ..config import AppConfig
from ..validators import positive
from .limit_slippage import read_slippage, slippage_to_json
from .pnl import CheckpointMovedError, PnlReporter, summary_to_json
from .rebalancing_cost import read_costs

log = logging.getLogger(__name__)


def _niceness(_i: object, attr: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 19:
        raise ValueError(f"{attr.name} must be between 0 and 19, got {value}")


@attrs.frozen
class ReportConfig:
    """``[report]``: how often the reporter loop looks for new trades (seconds), and
    how far it steps back from the CPU (``nice`` increment) so the bot it runs
    beside keeps its latency during a backlog."""

    interval: float = attrs.field(default=30.0, validator=positive)
    niceness: int = attrs.field(default=10, validator=_niceness)


@hookimpl
def st0x_register_config_sections(register: Callable[[ConfigSection], None]) -> None:
    register(ConfigSection("report", ReportConfig))


@hookimpl
def st0x_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..cli import config_parent

    parser = subparsers.add_parser(
        "report",
        parents=[config_parent()],
        help="FIFO realized P&L into metrics_pnl (loop beside the bot, --once, --summary)",
        description=(
            "Match onchain fills and filled hedges FIFO per symbol into metrics_pnl. "
            "Without options it loops beside the bot until interrupted."
        ),
    )
    parser.add_argument("--once", action="store_true", help="bring metrics_pnl up to date, exit")
    parser.add_argument(
        "--summary", action="store_true", help="bring up to date, print per-symbol totals, exit"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="recompute metrics_pnl from the whole log, exit"
    )
    parser.add_argument("--json", action="store_true", help="JSON output (with --summary)")
    parser.add_argument("--interval", type=float, help="seconds between looks (overrides config)")
    parser.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from ..app import open_store
    from ..cli import load

    config = load(args)
    _require_database(config)
    section = config.sections.get("report") or ReportConfig()
    interval = args.interval if args.interval is not None else section.interval

    async def go() -> int:
        store = open_store(config)
        await store.open()  # applies migrations (SQLite: sets WAL and busy_timeout)
        try:
            reporter = PnlReporter.on(store)
            if args.rebuild:
                written = await reporter.rebuild()
                if not args.summary:
                    print(f"rebuilt metrics_pnl: {written} trades")
            if args.once or args.summary or args.rebuild:
                written = await reporter.catch_up()
                if args.once and not args.summary:
                    print(
                        f"metrics_pnl: {written} new trades, checkpoint {await reporter.checkpoint()}"
                    )
                if args.summary:
                    await _print_summary(reporter, as_json=args.json)
                return 0
            _lower_priority(section.niceness)
            await _loop(reporter, interval)
            return 0
        finally:
            await store.close()

    return asyncio.run(go())


def _lower_priority(niceness: int) -> None:
    """Only the loop beside the bot yields the CPU; one-shot commands run at full speed."""
    if niceness and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError as exc:  # e.g. a sandbox that forbids it: run anyway
            log.warning("could not lower the reporter's priority: %s", exc)


async def _loop(reporter: PnlReporter, interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("reporter running: every %.1fs", interval)
    try:
        while not stop.is_set():
            try:
                written = await reporter.catch_up()
                if written:
                    log.info(
                        "metrics_pnl: %d new trades (checkpoint %d)",
                        written,
                        await reporter.checkpoint(),
                    )
            except CheckpointMovedError as exc:
                log.warning("%s", exc)
            except Exception:
                log.exception("reporter iteration failed; retrying next interval")
                reporter.book = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("reporter stopped")


async def _print_summary(reporter: PnlReporter, *, as_json: bool) -> None:
    summaries = [summary_to_json(s) for s in await reporter.summary()]
    cost = await read_costs(reporter.reads)
    realized = Decimal(summaries[-1]["realized_pnl"])
    data: dict[str, Any] = {
        "symbols": summaries[:-1],
        "total": summaries[-1],
        "rebalancing_cost": cost.to_json(),
        "realized_after_rebalancing": fmt(EXACT.subtract(realized, cost.total)),
        "limit_slippage": slippage_to_json(await read_slippage(reporter.reads)),
        "checkpoint": await reporter.checkpoint(),
    }
    if as_json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return
    header = ["SYMBOL", "REALIZED", "VOLUME USD", "SHARES", "ONCHAIN", "BROKER"]
    header += ["OPEN POS", "AVG COST", "AVG SPREAD"]
    rows = [
        [
            s["symbol"],
            money(s["realized_pnl"]),
            money(s["volume_usd"]),
            s["volume_shares"],
            s["trades_onchain"],
            s["trades_broker"],
            s["open_position"],
            money(s["average_cost"]),
            money(s["average_spread"], places=4),  # sub-cent spreads matter
        ]
        for s in [*data["symbols"], data["total"]]
    ]
    print(table(header, rows))
    if cost.operations:
        items = ", ".join(f"{k} {money(v)}" for k, v in data["rebalancing_cost"]["items"].items())
        print(
            f"rebalancing cost: {money(cost.total)} USD over {cost.operations} operations "
            f"({items}); realized after rebalancing: "
            f"{money(data['realized_after_rebalancing'])}"
        )
    for symbol, s in data["limit_slippage"].items():
        print(
            f"{symbol} extended-hours limits: {s['orders']} filled, {s['shares']} shares, "
            f"slippage {money(s['usd'])} USD ({s['bps']} bps) against the onchain fills"
        )


def _require_database(config: AppConfig) -> None:
    if config.postgres is None and not config.database_path.exists():
        raise StoreError(f"no database at {config.database_path} (has `run` been started?)")

"""The command line: thin argparse over the library. Plugins add subcommands by hook."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from . import __version__
from .app import open_store, run_app
from .audit import audit_report, positions_report
from .config import AppConfig, load_config
from .domain.calendar_record import KEY as CALENDAR_KEY
from .domain.calendar_record import NAMESPACE as CALENDAR_NAMESPACE
from .domain.calendar_record import CalendarRecord
from .domain.symbols import InvalidSymbolError, Symbol
from .errors import ConfigError, StoreError
from .logs import secrets_in, setup_logging
from .plugins import load_registry
from .registry import Registry
from .store.lease import LeaseHeldError, LeaseLostError
from .store.trading_state_log import ALL, TradingStateLog

EXIT_DATABASE_HELD = 3
"""Another process holds the database's lease (or took it from this one)."""


def config_parent() -> argparse.ArgumentParser:
    """``--config-file``, ``--log-format``, ``--log-level``: every command that reads the
    config takes them (``parents=[config_parent()]``), built-in plugins' commands too."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config-file", required=True, type=Path, help="TOML config file")
    parent.add_argument("--log-format", choices=("text", "json"), default="text")
    parent.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="overrides log_level"
    )
    return parent


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="st0x-liquidity",
        description="Hedge Raindex tokenized-equity fills at a brokerage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parent = config_parent()

    run = sub.add_parser(
        "run",
        parents=[parent],
        help="ingest fills and hedge them",
        description="Ingest fills from the configured source and hedge them through the "
        "configured broker until SIGINT/SIGTERM, or until a finite replay is drained "
        "(engine.exit_when_source_ends).",
    )
    run.set_defaults(handler=_cmd_run)

    positions = sub.add_parser(
        "positions",
        parents=[parent],
        help="net position per symbol",
        description="Net position, open lots and the pending hedge of every symbol, "
        "read from the database (read-only; the bot may be running).",
    )
    positions.add_argument("--json", action="store_true", help="stable JSON output")
    positions.set_defaults(handler=_cmd_positions)

    audit = sub.add_parser(
        "audit",
        parents=[parent],
        help="how each fill was netted/hedged",
        description="Each onchain fill with the fills it netted against, the hedges that "
        "covered it and what is still open; then each hedge order with the fills it covered.",
    )
    audit.add_argument("--json", action="store_true", help="stable JSON output")
    audit.add_argument("--symbol", help="only this base symbol (e.g. AAPL)")
    audit.add_argument("--tx", dest="tx_hash", help="only fills of this transaction")
    audit.set_defaults(handler=_cmd_audit)

    risk = sub.add_parser(
        "risk",
        parents=[parent],
        help="trading states (active, reducing, halted) and risk limits",
        description="Set a symbol's trading state, or every symbol's (active: hedge within "
        "[risk]; reducing: only orders that shrink the broker position; halted: no orders), "
        "or show the states and limits. A change is a row of trading_state_log, which a "
        "running bot applies within [risk] state_poll_interval and records as a "
        "TradingStateChanged event; a stopped one applies it on start.",
    )
    risk_sub = risk.add_subparsers(dest="risk_command", metavar="ACTION", required=True)
    set_state = risk_sub.add_parser(
        "set-state",
        help="set the trading state of SYMBOL, or of every symbol with 'all'",
        description="Set the trading state of SYMBOL (a base ticker such as AAPL), or of "
        "every symbol with 'all' (which also clears every symbol's own state).",
    )
    set_state.add_argument("symbol", metavar="SYMBOL|all")
    set_state.add_argument("state", choices=("active", "reducing", "halted"))
    set_state.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    set_state.add_argument("--actor", default=None, help="who (default: the user name)")
    set_state.set_defaults(handler=_cmd_risk_set_state)
    show = risk_sub.add_parser(
        "show",
        help="trading states and the limits in force",
        description="The trading state of every symbol as the trading state log says, "
        "and the [risk] limits (default and per symbol).",
    )
    show.add_argument("--json", action="store_true", help="stable JSON output")
    show.set_defaults(handler=_cmd_risk_show)

    rebuild = sub.add_parser(
        "rebuild-views",
        parents=[parent],
        help="rebuild views from events",
        description="Empty every view table and refill it by replaying the event log "
        "(prefer stopping the bot first).",
    )
    rebuild.set_defaults(handler=_cmd_rebuild)

    copy = sub.add_parser(
        "copy-to-postgres",
        parents=[parent],
        help="copy this SQLite database into an empty PostgreSQL database",
        description="Copy the config's SQLite database (event log, history side tables, "
        "dry-run ledger) into an EMPTY PostgreSQL database and rebuild its views there. "
        "Stop the bot first. Keep the password out of the command line: give it in "
        "PGPASSWORD or ~/.pgpass.",
    )
    copy.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://user@host:port/dbname"
    )
    copy.set_defaults(handler=_cmd_copy_to_postgres)

    plugins = sub.add_parser(
        "plugins",
        help="list plugins, executor types and fill sources",
        description="List the discovered plugins with their versions, and the executor "
        "types and fill sources they register (no config needed). With --config-file, "
        "also check that config against them (exit 2 and one line naming a bad key).",
    )
    plugins.add_argument("--json", action="store_true", help="stable JSON output")
    plugins.add_argument("--config-file", type=Path, help="also check this TOML config")
    plugins.set_defaults(handler=_cmd_plugins)

    registry.manager.hook.st0x_add_commands(subparsers=sub)
    _describe_commands(parser)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _describe_commands(parser: argparse.ArgumentParser) -> None:
    """Give every (plugin) subcommand without a description its one-line help as one,
    so that ``COMMAND --help`` always says what the command does."""
    sub = _subcommands(parser)
    if sub is None:
        return
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, child in sub.choices.items():
        if not child.description and helps.get(name):
            text = str(helps[name])
            child.description = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
        _describe_commands(child)


PLUGIN_COMMANDS = {"schwab": ("st0x-schwab", "schwab")}
"""Commands that plugin distributions add: command -> (distribution, core extra)."""


def _missing_plugin(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """One line naming the package to install, for a command whose plugin is absent."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    sub = _subcommands(parser)
    if command not in PLUGIN_COMMANDS or sub is None or command in sub.choices:
        return None
    distribution, extra = PLUGIN_COMMANDS[command]
    return (
        f"error: '{command}' is a command of the {distribution} plugin, which is not installed"
        f" (or is disabled by ST0X_DISABLE_PLUGINS): pip install 'st0x-liquidity[{extra}]'"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        registry = load_registry()
    except Exception as exc:
        print(f"error: could not load plugins: {exc}", file=sys.stderr)
        return 1
    parser = build_parser(registry)
    missing = _missing_plugin(parser, sys.argv[1:] if argv is None else argv)
    if missing is not None:
        print(missing, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    args.registry = registry
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except (LeaseHeldError, LeaseLostError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATABASE_HELD
    except StoreError as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of ours.
        sys.stderr.close()
        return 0


def load(args: argparse.Namespace) -> AppConfig:
    """Load the config named on the command line and set up logging for it."""
    config = load_config(args.config_file, args.registry)
    level = getattr(args, "log_level", None) or config.log_level
    setup_logging(level, getattr(args, "log_format", "text"), secrets_in(config))
    return config


def _cmd_run(args: argparse.Namespace) -> int:
    config = load(args)
    asyncio.run(run_app(config, args.registry))
    return 0


def _with_store(args: argparse.Namespace, fn: Callable[[Any], Any], *, writes: bool = False) -> Any:
    """Run ``fn(store)``: read-only, or holding the database's lease if it ``writes``."""
    config = load(args)
    if config.postgres is None and not config.database_path.exists():
        raise StoreError(f"no database at {config.database_path} (has `run` been started?)")

    async def go() -> Any:
        store = open_store(config, lease=writes, read_only=not writes)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(go())


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def _cmd_positions(args: argparse.Namespace) -> int:
    config = load(args)

    async def report(store: Any) -> list[dict[str, Any]]:
        return await positions_report(store.reads, await _sessions_now(config, store))

    rows = _with_store(args, report)
    if args.json:
        _print_json({"positions": rows})
        return 0
    print(
        f"{'SYMBOL':<8} {'NET':>20} {'OPEN':>20} {'LOTS':>5}  {'SESSION':<10} "
        f"{'NEXT HEDGE':<25}  PENDING HEDGE"
    )
    for r in rows:
        pending = r["pending_hedge"]
        text = (
            f"{pending['side']} {pending['quantity']} ({pending['state']}) {pending['client_order_id']}"
            if pending
            else "-"
        )
        if pending and pending.get("limit_price") is not None:
            text += (
                f" limit {pending['limit_price']} {pending['session']}"
                f" ({pending['reference_source']})"
            )
        session = r["session"] or {}
        nxt = session.get("next_hedge_at")
        nxt = "now" if nxt is not None and session.get("session") != "closed" else nxt
        print(
            f"{r['symbol']:<8} {r['net']:>20} {r['open_quantity']:>20} {len(r['open_lots']):>5}"
            f"  {session.get('session') or '-':<10} {nxt or '-':<25}  {text}"
        )
    return 0


async def _sessions_now(
    config: AppConfig, store: Any
) -> Callable[[str], dict[str, Any] | None] | None:
    """Each symbol's session from the calendar the engine last kept; None without one."""
    raw = await store.get_blob(CALENDAR_NAMESPACE, CALENDAR_KEY)
    if raw is None:
        return None
    try:
        record = CalendarRecord.from_json(raw)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        print(f"warning: the kept broker calendar is unreadable ({exc})", file=sys.stderr)
        return None
    now = record.session_time(datetime.now(UTC))
    extended = config.extended_hours

    def session(ticker: str) -> dict[str, Any] | None:
        own = extended.symbol(ticker)
        return record.symbol_session(
            ticker,
            opted_in=own is not None,
            overnight=own is not None and own.overnight,
            now=now,
        )

    return session


def _cmd_audit(args: argparse.Namespace) -> int:
    report = _with_store(
        args, lambda store: audit_report(store.reads, symbol=args.symbol, tx_hash=args.tx_hash)
    )
    if args.json:
        _print_json(report)
        return 0
    for fill in report["fills"]:
        print(
            f"{fill['trade_id']} {fill['symbol']} {fill['direction']} {fill['amount']} @ {fill['price']}"
        )
        for n in fill["netted"]:
            print(f"    netted   {n['quantity']:>14} against {n['against']}")
        for h in fill["hedged"]:
            print(f"    hedged   {h['quantity']:>14} by {h['client_order_id']} @ {h['price']}")
        for h in fill["reserved"]:
            print(f"    pending  {h['quantity']:>14} in {h['client_order_id']} ({h['state']})")
        if fill["open"] != "0":
            print(f"    open     {fill['open']:>14}")
    for hedge in report["hedges"]:
        # "BUY 1: filled, 1 executed @ 148.5" (not "filled filled 1"): the state, then
        # what the broker executed of the order.
        executed = f"{hedge['filled_quantity']} executed" + (
            f" @ {hedge['average_price']}" if hedge["average_price"] is not None else ""
        )
        print(
            f"hedge {hedge['client_order_id']} {hedge['side']} {hedge['quantity']}:"
            f" {hedge['state']}, {executed}" + (f" ({hedge['reason']})" if hedge["reason"] else "")
        )
        for f in hedge["fills"]:
            print(f"    {f['kind']:<8} {f['quantity']:>14} of {f['trade_id']}")
    recon = report["reconciliation"]
    if recon is None:
        print("reconciliation: none recorded yet")
        return 0
    detail = f" ({recon['detail']})" if recon["detail"] else ""
    print(f"reconciliation {recon['at']}: {recon['status']}{detail}")
    for r in recon["symbols"]:
        verdict = "MISMATCH" if r["mismatch"] else "ok"
        print(
            f"    {r['symbol']:<8} broker {r['broker']:>14} books {r['books']:>14}"
            f" difference {r['difference']:>14}  {verdict}"
        )
    if recon["skipped"]:
        print(f"    not compared (hedge in flight): {', '.join(recon['skipped'])}")
    return 0


def _cmd_risk_set_state(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        symbol = ALL if args.symbol.lower() == "all" else Symbol.parse(args.symbol).ticker
    except InvalidSymbolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reason = args.reason.strip()
    if not reason:
        print("error: --reason must not be empty", file=sys.stderr)
        return 2
    actor = args.actor or f"cli:{getpass.getuser()}"
    row = TradingStateLog(config.database).append_sync(
        symbol, args.state, reason[:500], actor[:100]
    )
    who = "every symbol" if symbol == ALL else symbol
    print(
        f"trading state of {who} set to {args.state} (request {row.id}); a running bot "
        f"applies it within {config.risk.state_poll_interval:g}s, a stopped one on start"
    )
    return 0


def _cmd_risk_show(args: argparse.Namespace) -> int:
    config = load(args)
    rows = TradingStateLog(config.database).after_sync(0)
    states: dict[str, dict[str, Any]] = {
        ALL: {"state": "active", "reason": None, "actor": None, "at": None}
    }
    for row in rows:
        entry = {"state": row.state, "reason": row.reason, "actor": row.actor, "at": row.at}
        if row.symbol == ALL:
            states = {ALL: entry}
        else:
            states[row.symbol] = entry
    risk = config.risk
    symbols = sorted(set(risk.symbols) | (set(states) - {ALL}))
    limits = {
        name: {k: str(v) for k, v in attrs.asdict(risk.limits(name)).items()}
        for name in [ALL, *symbols]
    }
    limits[ALL] = {k: str(v) for k, v in attrs.asdict(risk.limits("")).items()}
    if args.json:
        _print_json({"states": states, "limits": limits})
        return 0
    print(
        f"{'SYMBOL':<8} {'STATE':<9} {'MAX QTY':>12} {'MAX ORDER $':>14} "
        f"{'MAX EXPOSURE $':>16} {'MAX DAILY $':>14}  REASON"
    )
    for name in [ALL, *symbols]:
        st = states.get(name) or {**states[ALL], "reason": "(as all)"}
        lim = limits[name]
        print(
            f"{'all' if name == ALL else name:<8} {st['state']:<9} "
            f"{lim['max_order_quantity']:>12} {lim['max_order_notional']:>14} "
            f"{lim['max_net_exposure']:>16} {lim['max_daily_notional']:>14}  {st['reason'] or '-'}"
        )
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    async def rebuild(store: Any) -> int:
        count: int = await store.rebuild_views()
        return count

    count = _with_store(args, rebuild, writes=True)
    print(f"rebuilt views from {count} events")
    return 0


def _cmd_copy_to_postgres(args: argparse.Namespace) -> int:
    from .store.copy_to_postgres import copy_to_postgres
    from .store.postgres import redact

    config = load(args)
    if config.postgres is not None:
        raise ConfigError(
            "database_url", "is a PostgreSQL database; copy-to-postgres copies a SQLite file"
        )
    target = args.to.strip()
    if not target.lower().startswith(("postgresql://", "postgres://")):
        raise ConfigError("--to", "must be a postgresql://user@host:port/dbname URL")
    if not config.database_path.exists():
        raise StoreError(f"no database at {config.database_path} (nothing to copy)")
    ledger = None
    if config.broker_type == "dry-run" and getattr(config.broker, "state_path", None) is None:
        db = config.database_path
        ledger = db.with_name(db.name + ".dry-run.sqlite")
    report = asyncio.run(copy_to_postgres(config.database_path, target, ledger=ledger))
    tables = ", ".join(f"{n} {t}" for t, n in report.rows.items() if n)
    print(
        f"copied {report.events} events{' and ' + tables if tables else ''} "
        f"from {config.database_path} to {redact(target)}; views rebuilt"
    )
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry: Registry = args.registry
    checked: dict[str, str] | None = None
    if args.config_file is not None:
        config = load_config(args.config_file, registry)  # a bad key: ConfigError, exit 2
        checked = {
            "config_file": str(args.config_file),
            "broker": config.broker_type,
            "source": config.source_type,
        }
    data: dict[str, Any] = {
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version}
            for p in registry.plugins
        ],
        "executors": [
            {
                "type": name,
                "plugin": registry.origin[f"executor:{name}"],
                "description": e.description,
            }
            for name, e in sorted(registry.executors.items())
        ],
        "fill_sources": [
            {
                "type": name,
                "plugin": registry.origin[f"source:{name}"],
                "description": s.description,
            }
            for name, s in sorted(registry.sources.items())
        ],
    }
    if checked is not None:
        data["config"] = checked
    if args.json:
        _print_json(data)
        return 0
    print("plugins:")
    for p in data["plugins"]:
        print(f"  {p['name']}  ({p['distribution']} {p['version']})")
    print("executor types:")
    for e in data["executors"]:
        print(f"  {e['type']:<20} {e['description']}  [{e['plugin']}]")
    print("fill sources:")
    for s in data["fill_sources"]:
        print(f"  {s['type']:<20} {s['description']}  [{s['plugin']}]")
    if checked is not None:
        print(
            f"config {checked['config_file']}: OK (broker {checked['broker']}, "
            f"source {checked['source']})"
        )
    return 0

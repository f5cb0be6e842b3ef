"""`copy-to-postgres`: a SQLite installation moved into an empty PostgreSQL database.

The SQLite history is written by the real engine (fills, nettings, a filled
hedge, a partial fill then cancel, a reverted fill, a skipped input), plus
every side table that holds history; after the copy, `audit --json` and
`positions --json` print the same bytes on both databases, and the side
tables hold the same rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from support.executors import ScriptedExecutor
from support.fills import fill, tx
from support.harness import QueueSource, make_config, start_engine, stop, wait_for

from st0x_liquidity.cli import main
from st0x_liquidity.domain.fills import TradeId
from st0x_liquidity.domain.orders import MarketOrder, OrderState, OrderUpdate
from st0x_liquidity.protocols import RevertedItem, SkippedItem
from st0x_liquidity.reporting.pnl import PnlReporter
from st0x_liquidity.store.breaker_log import BreakerLog
from st0x_liquidity.store.dry_run_ledger import DryRunLedger, LedgerOrder
from st0x_liquidity.store.read_models import BreakerChange
from st0x_liquidity.store.rebalancing_log import SqliteRebalancingLog
from st0x_liquidity.store.sqlite import SqliteStore
from st0x_liquidity.store.trading_state_log import TradingStateLog

_CONFIG = """
database_url = "{url}"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "dry-run"
"""
SIDE_TABLES = (
    ("circuit_breaker_log", "id"),
    ("trading_state_log", "id"),
    ("rebalancing_events", "position"),
    ("plugin_blobs", "namespace, key"),
    ("metrics_pnl", "position"),
    ("metrics_pnl_lots", "symbol, seq"),
    ("metrics_pnl_symbols", "symbol"),
    ("metrics_pnl_checkpoint", "id"),
)


async def _history(tmp: Path) -> Path:
    """A SQLite database the engine wrote, with every kind of history."""
    config = make_config(tmp)
    executor = ScriptedExecutor()

    partials: list[str] = []

    def partial_then_cancel(order: MarketOrder, _call: int) -> OrderUpdate:
        if order.symbol.ticker == "TSLA" and not partials:  # the first: 1 of 3, then cancelled
            partials.append(order.client_order_id)
            return executor.accept(order, OrderState.CANCELLED, filled=Decimal(1))
        return executor.accept(order)

    executor.on_place = partial_then_cancel
    source = QueueSource()
    engine, store, task = await start_engine(config, executor, source)
    source.push(fill(1, "tAAPL", "BUY", "2.500000000000000001", "187.12345"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    source.push(fill(2, "tAAPL", "SELL", "0.75", "187.5"), fill(3, "tTSLA", "SELL", "3", "250"))

    async def settled() -> bool:
        tsla = await store.hedge_orders(symbol="TSLA")
        return len(tsla) >= 2 and not await store.hedge_orders(open_only=True)

    await wait_for(settled)
    source.push_item(RevertedItem(TradeId(tx(2), 0), "reorg: block 2 replaced", {"n": 10}))
    source.push_item(SkippedItem("line 11: not valid JSON", "{oops", {"n": 11}))
    await wait_for(lambda: engine.status.inputs_skipped >= 1)

    async def reverted() -> bool:
        rows = await store.fetch("SELECT COUNT(*) FROM events WHERE event_type = 'FillReverted'")
        return bool(rows[0][0])

    await wait_for(reverted)
    await wait_for(settled)
    await store.put_blob("schwab", "tokens", b"\x00\x01encrypted\xff")
    await stop(engine, task, store)

    path = config.database_path
    await BreakerLog(path).append(BreakerChange("t1", "pause", "maintenance", "op", "10.0.0.1"))
    await TradingStateLog(path).append("AAPL", "reducing", "end of day", "cli:op")
    log = SqliteRebalancingLog(path)
    await log.open()
    await log.append("mint:op-1", [("OperationRequested", '{"q":"1.5"}')], core_position=3)
    await log.close()
    async with SqliteStore(path, lease=False) as reader:
        assert await PnlReporter.on(reader).catch_up() > 0
    ledger = DryRunLedger(path.with_name(path.name + ".dry-run.sqlite"))
    await ledger.open()
    at = datetime(2026, 1, 2, 15, tzinfo=UTC)
    order = LedgerOrder(
        "b-1",
        partials[0],
        "TSLA",
        "BUY",
        Decimal(3),
        Decimal("250.5"),
        "cancelled",
        Decimal(1),
        "partial",
        at,
        at,
    )
    assert await ledger.record(order)
    await ledger.close()
    return path


def _rows(sqlite_path: Path, url: str, table: str, order: str) -> tuple[list, list]:  # type: ignore[type-arg]
    sql = f"SELECT * FROM {table} ORDER BY {order}"
    with sqlite3.connect(sqlite_path) as db:
        here = [tuple(r) for r in db.execute(sql).fetchall()]
    with psycopg.connect(url) as pg:
        there = [tuple(r) for r in pg.execute(sql).fetchall()]
    return here, there


async def test_a_copy_prints_the_same_audit_and_positions_and_keeps_the_side_tables(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_path = await _history(tmp_path)
    with sqlite3.connect(sqlite_path) as db:
        kinds = {k for (k,) in db.execute("SELECT DISTINCT event_type FROM events")}
        partial = db.execute(
            "SELECT state, filled_quantity, quantity FROM hedge_orders WHERE symbol = 'TSLA' "
            "ORDER BY created_at"
        ).fetchall()
    assert {"FillRecorded", "HedgeIntended", "HedgeClosed", "FillReverted", "InputSkipped"} <= kinds
    assert partial[0] == ("cancelled", "1", "3")
    (tmp_path / "fills.jsonl").touch()
    source_config = tmp_path / "sqlite.toml"
    source_config.write_text(_CONFIG.format(url=sqlite_path))
    password = postgres_url.split(":")[2].split("@", maxsplit=1)[0]

    copy = ["copy-to-postgres", "--config-file", str(source_config), "--to", postgres_url]
    assert await asyncio.to_thread(main, copy) == 0
    out = capsys.readouterr().out
    assert out.startswith("copied ") and "views rebuilt" in out
    assert password not in out

    outputs: dict[str, list[str]] = {}
    for name, url in (("sqlite", str(sqlite_path)), ("postgres", postgres_url)):
        config = tmp_path / f"{name}.toml"
        config.write_text(_CONFIG.format(url=url))
        outputs[name] = []
        for command in (["audit", "--json"], ["positions", "--json"]):
            assert await asyncio.to_thread(main, [*command, "--config-file", str(config)]) == 0
            outputs[name].append(capsys.readouterr().out)
    assert outputs["postgres"] == outputs["sqlite"]
    assert '"2.500000000000000001"' in outputs["sqlite"][0]
    for table, order in SIDE_TABLES:
        here, there = _rows(sqlite_path, postgres_url, table, order)
        assert here, table
        assert there == here, table
    for view, order in (("onchain_trades", "id"), ("skipped_inputs", "source, sequence")):
        here, there = _rows(sqlite_path, postgres_url, view, order)
        assert there == here, view
    here, there = _rows(sqlite_path, postgres_url, "meta", "key")
    assert dict(there)["database_id"] == dict(here)["database_id"]  # in client_order_ids
    # Every event at its log position (what P&L checkpoints and rebalancing name).
    columns = "aggregate_type, aggregate_id, sequence, event_type, payload, metadata, recorded_at"
    with sqlite3.connect(sqlite_path) as db:
        here = db.execute(f"SELECT rowid, {columns} FROM events ORDER BY rowid").fetchall()
    with psycopg.connect(postgres_url) as pg:
        there = pg.execute(f"SELECT position, {columns} FROM events ORDER BY position").fetchall()
    assert there == here
    # The dry-run broker's orders moved too: recovery finds them by client_order_id.
    ledger = sqlite_path.with_name(sqlite_path.name + ".dry-run.sqlite")
    with sqlite3.connect(ledger) as db:
        orders = db.execute("SELECT * FROM orders").fetchall()
    with psycopg.connect(postgres_url) as pg:
        assert pg.execute("SELECT * FROM dry_run_orders").fetchall() == orders != []

    # A second copy into the (no longer empty) database: one line, nothing written.
    assert await asyncio.to_thread(main, copy) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty" in err
    assert password not in err
    with psycopg.connect(postgres_url) as pg:
        count = pg.execute("SELECT COUNT(*) FROM events").fetchone()
    with sqlite3.connect(sqlite_path) as db:
        assert count == db.execute("SELECT COUNT(*) FROM events").fetchone()
    # The copy carries on: ids continue after the copied ones, the views rebuild the same.
    request = await TradingStateLog(postgres_url).append("*", "active", "moved", "cli:op")
    with sqlite3.connect(sqlite_path) as db:
        assert request.id == db.execute("SELECT MAX(id) FROM trading_state_log").fetchone()[0] + 1
    await BreakerLog(postgres_url).append(BreakerChange("t2", "resume", "moved", "op", None))
    pg_config = tmp_path / "postgres.toml"
    assert await asyncio.to_thread(main, ["rebuild-views", "--config-file", str(pg_config)]) == 0
    assert await asyncio.to_thread(main, ["audit", "--json", "--config-file", str(pg_config)]) == 0
    assert capsys.readouterr().out.endswith(outputs["sqlite"][0])

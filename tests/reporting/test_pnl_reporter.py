"""The reporter over a real database written by the real engine (replay + dry-run): a
SQLite file, and (where marked) a PostgreSQL database."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from st0x_liquidity.app import run_app
from st0x_liquidity.config import load_config
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.pnl import BROKER, ONCHAIN, PnlTrade, match_fifo
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.reporting.pnl import CheckpointMovedError, PnlReporter, row_values
from st0x_liquidity.store.postgres import PostgresStore
from st0x_liquidity.store.sqlite import SqliteStore

NOW = datetime.now(UTC)
REPO = Path(__file__).resolve().parents[2]


def fill_line(n: int, symbol: str, direction: str, amount: str, price: str) -> str:
    return json.dumps(
        {
            "tx_hash": f"0x{n:064x}",
            "log_index": 0,
            "symbol": symbol,
            "direction": direction,
            "amount": amount,
            "price": price,
            "block_number": n,
            "block_timestamp": "2026-01-02T15:00:00Z",
        }
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """``st0x.db`` beside the config, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return "st0x.db"


def open_db(tmp: Path, database_url: str) -> SqliteStore | PostgresStore:
    """The reporter's store (no lease) on the test's database."""
    if database_url.startswith("postgresql://"):
        return PostgresStore(database_url, lease=False)
    return SqliteStore(tmp / database_url, lease=False)


def write_config(
    tmp: Path, fill_price: str, profile: str = "whole", database_url: str = "st0x.db"
) -> Path:
    path = tmp / "st0x.toml"
    path.write_text(
        f"""
database_url = "{database_url}"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "dry-run"
profile = "{profile}"
fill_price = "{fill_price}"
[hedging]
poll_interval = 0.01
poll_jitter = 0.0
[engine]
drain_timeout = 10.0
"""
    )
    return path


async def run_bot(config_path: Path) -> None:
    registry = load_registry()
    await run_app(load_config(config_path, registry, env={}), registry)


def append_fills(tmp: Path, *lines: str) -> None:
    with (tmp / "fills.jsonl").open("a") as fh:
        for text in lines:
            fh.write(text + "\n")


async def table(store: SqliteStore | PostgresStore) -> list[tuple[Any, ...]]:
    rows = await store.fetch("SELECT * FROM metrics_pnl ORDER BY position")
    lots = await store.fetch("SELECT * FROM metrics_pnl_lots ORDER BY symbol, seq")
    symbols = await store.fetch("SELECT * FROM metrics_pnl_symbols ORDER BY symbol")
    return [*rows, *lots, *symbols]


async def test_worked_example_through_the_real_engine(tmp_path: Path, database_url: str) -> None:
    """reference §3.5, with tAAPL fills onchain and AAPL hedges at the broker."""
    # Run 1: three onchain sells; the whole-share dry-run broker buys 1 at 148.50.
    append_fills(
        tmp_path,
        fill_line(1, "tAAPL", "SELL", "0.3", "150.00"),
        fill_line(2, "tAAPL", "SELL", "0.5", "151.00"),
        fill_line(3, "AAPL0x", "SELL", "0.4", "152.00"),
    )
    await run_bot(write_config(tmp_path, "148.50", database_url=database_url))
    store = open_db(tmp_path, database_url)
    await store.open()
    reporter = PnlReporter.on(store)
    assert await reporter.step() == 4
    # Run 2: two onchain buys; the broker sells 1 at 151.10.
    append_fills(
        tmp_path,
        fill_line(5, "tAAPL", "BUY", "0.5", "149.00"),
        fill_line(6, "tAAPL", "BUY", "0.9", "150.25"),
    )
    await run_bot(write_config(tmp_path, "151.10", database_url=database_url))
    assert await reporter.catch_up() == 3
    assert await reporter.catch_up() == 0  # each trade once

    rows = [attrs.astuple(r) for r in await reporter.rows()]
    got = [(r[4], r[6], r[7], r[8], r[10], r[11], r[12]) for r in rows]
    assert got == [
        ("onchain", "SELL", "0.3", "150", None, "0", "-0.3"),
        ("onchain", "SELL", "0.5", "151", None, "0", "-0.8"),
        ("onchain", "SELL", "0.4", "152", None, "0", "-1.2"),
        ("broker", "BUY", "1", "148.5", "2.4", "2.4", "-0.2"),
        ("onchain", "BUY", "0.5", "149", "0.6", "3", "0.3"),
        ("onchain", "BUY", "0.9", "150.25", None, "3", "1.2"),
        ("broker", "SELL", "1", "151.1", "1.225", "4.225", "0.2"),
    ]
    assert {r[1] for r in rows} == {"AAPL"}
    (aapl, total) = await reporter.summary()
    assert aapl.realized == Decimal("4.225") and total.realized == Decimal("4.225")
    assert aapl.net_position == Decimal("0.2") and aapl.average_cost == Decimal("150.25")

    incremental = await table(store)
    assert await reporter.rebuild() == 7
    assert await table(store) == incremental
    await store.close()


async def test_incremental_equals_rebuild_and_views(tmp_path: Path) -> None:
    """Many small increments, fractional hedges: same table as a rebuild, and the same
    result as matching the views (onchain_trades + hedge_orders) independently."""
    lines = []
    for n in range(1, 41):
        symbol = ("tAAPL", "tTSLA", "NVDA0x")[n % 3]
        direction = "BUY" if (n * 7) % 5 < 3 else "SELL"
        lines.append(
            fill_line(n, symbol, direction, f"0.{n % 9 + 1}{n % 7}", f"{100 + n % 11}.{n % 4}5")
        )
    store = SqliteStore(tmp_path / "st0x.db", lease=False)
    for chunk in range(4):
        append_fills(tmp_path, *lines[chunk * 10 : chunk * 10 + 10])
        await run_bot(write_config(tmp_path, f"10{chunk}.5", profile="fractional"))
        await store.open()
        reporter = PnlReporter.on(store)
        while await reporter.step(limit=3):
            pass
        await store.close()
    await store.open()
    incremental = await table(store)
    reporter = PnlReporter.on(store)
    await reporter.rebuild()
    assert await table(store) == incremental

    # Independent derivation from the views, ordered by commit order of the events.
    trades = []
    for tx, idx, symbol, direction, amount, price, _recorded in await store.fetch(
        "SELECT tx_hash, log_index, symbol, direction, amount, price, recorded_at FROM onchain_trades"
    ):
        pos = await store.fetch(
            "SELECT rowid FROM events WHERE event_type = 'FillRecorded' "
            "AND json_extract(payload, '$.fill.trade_id') = ?",
            (f"{tx}:{idx}",),
        )
        trades.append((pos[0][0], symbol, ONCHAIN, f"{tx}:{idx}", direction, amount, price))
    for cid, symbol, side, filled, avg in await store.fetch(
        "SELECT client_order_id, symbol, side, filled_quantity, average_price FROM hedge_orders "
        "WHERE filled_quantity != '0' AND state IN ('filled', 'failed', 'cancelled')"
    ):
        pos = await store.fetch(
            "SELECT rowid FROM events WHERE event_type = 'HedgeClosed' "
            "AND json_extract(payload, '$.client_order_id') = ?",
            (cid,),
        )
        trades.append((pos[0][0], symbol, BROKER, cid, side, filled, avg))
    expected = match_fifo(
        PnlTrade(p, s, v, t, Direction(d), Decimal(q), Decimal(pr), NOW)
        for p, s, v, t, d, q, pr in trades
    )
    rows = [attrs.astuple(r) for r in await reporter.rows()]
    assert len(rows) == len(expected) > 40
    for got, want in zip(rows, expected, strict=True):
        values = attrs.astuple(row_values(want))
        assert (got[0], got[1], *got[4:]) == (values[0], values[1], *values[4:])
    await store.close()


async def test_a_second_reporter_does_not_duplicate(tmp_path: Path, database_url: str) -> None:
    append_fills(tmp_path, *(fill_line(n, "tAAPL", "BUY", "1", "100") for n in range(1, 4)))
    await run_bot(write_config(tmp_path, "101", database_url=database_url))
    first = open_db(tmp_path, database_url)
    second = open_db(tmp_path, database_url)
    await first.open()
    await second.open()
    a, b = PnlReporter.on(first), PnlReporter.on(second)
    a.book = await a.load()
    b.book = await b.load()
    assert await a.step() > 0
    try:
        await b.step()
    except CheckpointMovedError:
        pass
    else:
        raise AssertionError("second reporter wrote over the first")
    assert await b.catch_up() == 0  # reloaded, nothing new
    hedges = await first.fetch("SELECT COUNT(*) FROM hedge_orders WHERE state = 'filled'")
    assert len(await a.rows()) == 3 + hedges[0][0]
    await first.close()
    await second.close()


def test_report_cli(tmp_path: Path, database_url: str) -> None:
    append_fills(
        tmp_path,
        fill_line(1, "tAAPL", "SELL", "2", "101"),
        fill_line(2, "tTSLA", "BUY", "1.5", "240"),
    )
    config = write_config(tmp_path, "100", database_url=database_url)
    cli = [sys.executable, "-m", "st0x_liquidity"]
    subprocess.run(
        [*cli, "run", "--config-file", str(config)], check=True, capture_output=True, cwd=REPO
    )
    once = subprocess.run(
        [*cli, "report", "--config-file", str(config), "--once"],
        capture_output=True,
        check=False,
        text=True,
        cwd=REPO,
    )
    assert once.returncode == 0, once.stderr
    assert "new trades" in once.stdout
    out = subprocess.run(
        [*cli, "report", "--config-file", str(config), "--summary", "--json"],
        capture_output=True,
        check=False,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    by_symbol = {s["symbol"]: s for s in data["symbols"]}
    assert by_symbol["AAPL"]["realized_pnl"] == "2"  # sold 2 @101, hedged buy 2 @100
    assert by_symbol["AAPL"]["average_spread"] == "1"
    assert by_symbol["TSLA"]["open_position"] == "0.5"  # whole-share hedge sold 1 of 1.5
    assert data["total"]["realized_pnl"] == "-138"  # TSLA: sold 1 @100 bought @240
    text = subprocess.run(
        [*cli, "report", "--config-file", str(config), "--summary"],
        capture_output=True,
        check=False,
        text=True,
        cwd=REPO,
    )
    assert text.returncode == 0 and "TOTAL" in text.stdout

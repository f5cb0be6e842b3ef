"""The same events give byte-identical ``audit --json`` and ``positions --json`` on both backends.

The events are written once by the SQLite store, copied row for row into a
PostgreSQL database, and both stores' views are rebuilt from them (so even
the recorded times are the same); then the real CLI prints both reports.
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from support.events import hedge_closed
from support.fills import fill

from st0x_liquidity.cli import EXIT_DATABASE_HELD, main
from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.events import (
    FillRecorded,
    HedgeCancelRequested,
    HedgeIntended,
    HedgeSubmitted,
    position_event,
)
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.orders import OrderRules, OrderState
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.store.postgres import PostgresStore
from st0x_liquidity.store.sqlite import SqliteStore

_CONFIG = """
database_url = "{url}"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "dry-run"
"""


async def _write_history(store: SqliteStore) -> None:
    """Two symbols: nettings, a filled hedge, one in flight, 18-decimal amounts."""
    aapl = SymbolBook(Symbol("AAPL"))
    for n, (side, amount, price) in enumerate(
        [
            ("BUY", "2.500000000000000001", "187.12345"),
            ("SELL", "0.75", "187.5"),
            ("BUY", "1.1", "186.9"),
        ],
        1,
    ):
        f = fill(n, "tAAPL", side, amount, price)
        await store.append([position_event(f.symbol, FillRecorded(f, aapl.apply_fill(f)))])
    decision = aapl.decide(OrderRules.whole_shares())
    assert decision is not None
    reserved = aapl.reserve(decision, "h-1")
    intent = HedgeIntended("h-1", decision.side, decision.quantity, Decimal("187"), reserved)
    await store.append([position_event(aapl.symbol, intent)])
    settled = aapl.finish("h-1", decision.quantity)
    await store.append(
        [
            hedge_closed(
                aapl, "h-1", decision.side, decision.quantity, Decimal("187.01"), settled,
                state=OrderState.FILLED, reason=None,
            )
        ]
    )
    tsla = SymbolBook(Symbol("TSLA"))
    t = fill(9, "tTSLA", "SELL", "3.000000000000000010", "250")
    await store.append([position_event(t.symbol, FillRecorded(t, tsla.apply_fill(t)))])
    decision = tsla.decide(OrderRules.whole_shares())
    assert decision is not None and decision.side is Direction.BUY
    reserved = tsla.reserve(decision, "h-2")
    intent = HedgeIntended(  # an extended-hours limit, being repriced
        "h-2",
        decision.side,
        decision.quantity,
        Decimal("250.4"),
        reserved,
        order_type="limit",
        limit_price=Decimal("251.66"),
        session="post",
        reference_source="pyth",
        onchain_price=Decimal("250"),
    )
    await store.append([position_event(tsla.symbol, intent)])
    await store.append([position_event(tsla.symbol, HedgeSubmitted("h-2", "b-2"))])
    cancel = HedgeCancelRequested("h-2", "b-2", "reprice")
    await store.append([position_event(tsla.symbol, cancel)])


async def test_audit_and_positions_json_are_identical_on_both_backends(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_path = tmp_path / "st0x.db"
    async with SqliteStore(sqlite_path) as store:
        await _write_history(store)
    async with PostgresStore(postgres_url):
        pass  # creates the schema
    with sqlite3.connect(sqlite_path) as db:
        rows = db.execute(
            "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, "
            "metadata, recorded_at FROM events ORDER BY rowid"
        ).fetchall()
    with psycopg.connect(postgres_url) as pg:
        pg.cursor().executemany(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, "
            "event_version, payload, metadata, recorded_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    outputs: dict[str, list[str]] = {}
    for name, url in (("sqlite", str(sqlite_path)), ("postgres", postgres_url)):
        config = tmp_path / f"{name}.toml"
        config.write_text(_CONFIG.format(url=url))
        outputs[name] = []
        for command in (["rebuild-views"], ["audit", "--json"], ["positions", "--json"]):
            assert await asyncio.to_thread(main, [*command, "--config-file", str(config)]) == 0
            outputs[name].append(capsys.readouterr().out)
    assert outputs["postgres"] == outputs["sqlite"]
    audit = outputs["sqlite"][1]
    assert '"2.500000000000000001"' in audit and '"h-2"' in audit
    assert "3.00000000000000001" in audit  # canonical: no trailing zero
    assert '"reference_source": "pyth"' in audit and '"limit_price": "251.66"' in audit
    assert '"cancel_requested_at": "' in audit
    positions = outputs["sqlite"][2]
    assert '"limit_price": "251.66"' in positions and '"session": "post"' in positions


async def test_a_second_run_on_a_live_postgres_lease_exits_3_with_one_line(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pg.toml"
    config.write_text(_CONFIG.format(url=postgres_url))
    password = postgres_url.split(":")[2].split("@", maxsplit=1)[0]
    async with PostgresStore(postgres_url) as holder:
        assert holder.epoch == 1
        status = await asyncio.to_thread(main, ["rebuild-views", "--config-file", str(config)])
        assert status == EXIT_DATABASE_HELD
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: database postgresql://st0x@127.0.0.1:")
    assert "is being written by pid" in err
    assert password not in err

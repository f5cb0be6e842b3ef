"""The side-table writers of the store package, on both backends (the bot's SQLite file or
its PostgreSQL database: ``database`` is either)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from support.fills import fill
from support.stores import OpenStore

from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.events import FillRecorded, position_event
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.pnl import PnlBook, PnlTrade
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.errors import StoreError
from st0x_liquidity.store.breaker_log import BreakerLog
from st0x_liquidity.store.dry_run_ledger import DryRunLedger, LedgerOrder
from st0x_liquidity.store.pnl_tables import CheckpointMovedError, pnl_tables
from st0x_liquidity.store.read_models import BreakerChange
from st0x_liquidity.store.rebalancing_log import ConcurrentAppendError, SqliteRebalancingLog
from st0x_liquidity.store.trading_state_log import TradingStateLog

T0 = datetime(2026, 1, 2, 15, tzinfo=UTC)


def order(broker_id: str, cid: str, filled: str = "1.5") -> LedgerOrder:
    return LedgerOrder(
        broker_id,
        cid,
        "AAPL",
        "BUY",
        Decimal("1.5"),
        Decimal("100.25"),
        "filled",
        Decimal(filled),
        None,
        T0,
        T0 + timedelta(seconds=1),
    )


def ledger_at(backend: str, database: str, tmp_path: Path) -> Path | str:
    """The dry-run ledger beside a SQLite file, or in the PostgreSQL database itself."""
    return database if backend == "postgres" else tmp_path / "db.dry-run.sqlite"


async def test_the_dry_run_ledger_keeps_orders_and_refuses_a_reused_client_id(
    backend: str, database: str, tmp_path: Path
) -> None:
    where = ledger_at(backend, database, tmp_path)
    ledger = DryRunLedger(where)
    with pytest.raises(StoreError, match="not started"):
        await ledger.orders()
    await ledger.open()
    try:
        assert await ledger.record(order("b-1", "c-1"))
        assert not await ledger.record(order("b-2", "c-1"))
        assert await ledger.by_broker_id("b-1") == order("b-1", "c-1")
        assert await ledger.by_client_id("c-1") == order("b-1", "c-1")
        assert await ledger.by_broker_id("b-2") is None
        assert await ledger.orders() == [order("b-1", "c-1")]
        assert await ledger.placement_counts() == {"c-1": 2}
    finally:
        await ledger.close()
    reopened = DryRunLedger(where)
    await reopened.open()
    try:
        assert await reopened.by_client_id("c-1") == order("b-1", "c-1")
    finally:
        await reopened.close()


async def test_the_breaker_log_appends_beside_an_open_store(
    open_store: OpenStore, database: str
) -> None:
    async with open_store() as store:
        log = BreakerLog(database)
        assert log.last_change() is None
        await log.append(BreakerChange("t1", "pause", "maintenance", "op", "10.0.0.1"))
        await log.append(BreakerChange("t2", "resume", "done", "op", None))
        assert log.last_change() == BreakerChange("t2", "resume", "done", "op", None)
        assert [c.at for c in await store.reads.breaker_history(10)] == ["t2", "t1"]


def test_the_breaker_log_of_a_database_without_its_table_is_a_store_error(
    backend: str, database: str, tmp_path: Path
) -> None:
    where = database if backend == "postgres" else tmp_path / "empty.db"
    with pytest.raises(StoreError, match="circuit breaker log") as error:
        BreakerLog(where).last_change()
    if backend == "postgres":  # no circuit_breaker_log before `run` migrates it; no password
        assert database.split(":")[2].split("@", maxsplit=1)[0] not in str(error.value)


async def test_trading_state_requests_append_and_read_back_in_order(
    open_store: OpenStore, database: str
) -> None:
    async with open_store():
        log = TradingStateLog(database)
        first = log.append_sync("AAPL", "halted", "mismatch", "cli:op")
        second = await log.append("*", "reducing", "end of day", "dashboard", "10.0.0.1")
        assert second.id > first.id
        assert log.after_sync(0) == [first, second]
        assert await log.after(first.id) == [second]


async def test_the_rebalancing_log_appends_with_its_length_check_and_reads_the_core_log(
    open_store: OpenStore, database: str
) -> None:
    async with open_store() as store:
        book = SymbolBook(Symbol("AAPL"))
        f = fill(1, "tAAPL", "BUY", "2.5")
        await store.append([position_event(f.symbol, FillRecorded(f, book.apply_fill(f)))])
        log = SqliteRebalancingLog(database)
        await log.open()
        other = SqliteRebalancingLog(database)
        await other.open()
        try:
            assert await log.append("op-1", [("Requested", '{"q":"1.5"}')], core_position=1) == 1
            with pytest.raises(ConcurrentAppendError, match="has 1 events, expected 0"):
                await other.append("op-1", [("Requested", "{}")], core_position=1, expected=0)
            assert await other.append("op-1", [("Done", "{}")], core_position=1, expected=1) == 2
            records = await log.read()
            assert [(r.stream, r.event_type, r.payload) for r in records] == [
                ("op-1", "Requested", '{"q":"1.5"}'),
                ("op-1", "Done", "{}"),
            ]
            assert await log.streams_with_prefix("op-") == ["op-1"]
            assert await log.core_head() == 1
            core = await log.core_events(0, ["FillRecorded"], 10)
            assert [(p, e.aggregate_id) for p, e in core] == [(1, "AAPL")]
        finally:
            await log.close()
            await other.close()


async def test_the_pnl_tables_write_exact_decimals_and_refuse_a_moved_checkpoint(
    open_store: OpenStore,
) -> None:
    async with open_store(lease=False) as store:
        tables = pnl_tables(store)
        book = PnlBook()
        t1 = PnlTrade(
            1,
            "AAPL",
            "onchain",
            "0xa:1",
            Direction.BUY,
            Decimal("1.123456789"),
            Decimal("100.000000001"),
            T0,
            T0,
        )
        rows = [book.apply(t1)]
        await tables.write(0, rows, ["AAPL"], book)
        assert await tables.checkpoint() == book.checkpoint
        with pytest.raises(CheckpointMovedError):
            await tables.write(0, rows, ["AAPL"], book)
        records = await tables.records("AAPL")
        assert [(r.quantity, r.price) for r in records] == [("1.123456789", "100.000000001")]
        loaded = await tables.load_book()
        assert loaded.checkpoint == book.checkpoint
        assert loaded.symbols["AAPL"].lots == book.symbols["AAPL"].lots
        await tables.clear()
        assert await tables.records() == []
        assert await tables.checkpoint() == 0

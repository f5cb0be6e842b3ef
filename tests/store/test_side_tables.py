"""The side-table writers of the store package, on real SQLite files (SQLite only so far)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from st0x_liquidity.errors import StoreError
from st0x_liquidity.store.breaker_log import BreakerLog
from st0x_liquidity.store.dry_run_ledger import DryRunLedger, LedgerOrder
from st0x_liquidity.store.read_models import BreakerChange
from st0x_liquidity.store.sqlite import SqliteStore

pytestmark = pytest.mark.sqlite  # the dry-run ledger and breaker log are SQLite files so far

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


async def test_the_dry_run_ledger_keeps_orders_and_refuses_a_reused_client_id(
    tmp_path: Path,
) -> None:
    ledger = DryRunLedger(tmp_path / "db.dry-run.sqlite")
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
    reopened = DryRunLedger(tmp_path / "db.dry-run.sqlite")
    await reopened.open()
    try:
        assert await reopened.by_client_id("c-1") == order("b-1", "c-1")
    finally:
        await reopened.close()


async def test_the_breaker_log_appends_beside_an_open_store(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        log = BreakerLog(store.path)
        assert log.last_change() is None
        await log.append(BreakerChange("t1", "pause", "maintenance", "op", "10.0.0.1"))
        await log.append(BreakerChange("t2", "resume", "done", "op", None))
        assert log.last_change() == BreakerChange("t2", "resume", "done", "op", None)
        assert [c.at for c in await store.reads.breaker_history(10)] == ["t2", "t1"]


def test_the_breaker_log_of_a_database_without_its_table_is_a_store_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(StoreError, match="circuit breaker log"):
        BreakerLog(tmp_path / "empty.db").last_change()

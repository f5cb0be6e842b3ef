"""Inventory: fills and hedge fills from the real core log, snapshots and drift, rebuild."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from rebalancing_support import T0
from support.fills import fill

from st0x_liquidity.domain.events import FillRecorded, HedgeClosed, HedgeProgressed, position_event
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.orders import OrderState
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.rebalancing.events import Moved, OperationRequested, op_stream
from st0x_liquidity.rebalancing.inventory import USDC, Venue
from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import ConcurrentAppendError, RebalancingLog
from st0x_liquidity.store.stores import store_at


async def _seed(path: Path | str) -> None:
    """Fills and a hedge in the database at ``path`` (a SQLite file or a PostgreSQL URL)."""
    async with store_at(path) as store:
        aapl = Symbol("AAPL")
        await store.append(
            [
                position_event(aapl, FillRecorded(fill(1, "tAAPL", "BUY", "10", "100"))),
                position_event(aapl, FillRecorded(fill(2, "tAAPL", "SELL", "4", "110"))),
                position_event(
                    aapl,
                    HedgeProgressed("c1", Direction.SELL, Decimal(2), Decimal("101"), ()),
                ),
                position_event(
                    aapl,
                    HedgeClosed(
                        "c1",
                        Direction.SELL,
                        OrderState.FILLED,
                        Decimal(6),
                        Decimal("102"),
                        None,
                        (),
                        (),
                        (),
                    ),
                ),
            ]
        )


@pytest.mark.asyncio
async def test_fills_hedges_snapshots_and_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "st0x.db"
    await _seed(db)
    log = RebalancingLog(db)
    await log.open()
    keeper = InventoryKeeper(log)
    book = await keeper.refresh()
    aapl = book.assets["AAPL"]
    assert aapl.onchain.available == Decimal(6)
    assert aapl.offchain.available == Decimal(-6)
    # onchain USDC: -1000 + 440; offchain cash: +6*102
    assert book.assets[USDC].onchain.available == Decimal(-560)
    assert book.assets[USDC].offchain.available == Decimal(612)

    # The broker says 94 AAPL (we started with 100) and 10000 cash: two drifts.
    _, drifts = await keeper.record_snapshot(
        Venue.OFFCHAIN, {"AAPL": Decimal(94), USDC: Decimal(10000)}, complete=True
    )
    assert {(d.asset, d.difference) for d in drifts} == {
        ("AAPL", Decimal(100)),
        (USDC, Decimal(9388)),
    }
    assert keeper.book.assets["AAPL"].offchain.available == Decimal(94)
    # a second identical snapshot finds no drift
    _, drifts = await keeper.record_snapshot(
        Venue.OFFCHAIN, {"AAPL": Decimal(94), USDC: Decimal(10000)}, complete=True
    )
    assert drifts == []

    # an operation in flight: moves apply, snapshots skip the asset
    await log.append(
        op_stream("m1"),
        [
            OperationRequested("m1", "mint", "AAPL", Decimal(10), "cli", T0),
            Moved("m1", "AAPL", "offchain", "reserve", Decimal(10)),
        ],
        core_position=keeper.book.core_position,
        expected=0,
    )
    snap, drifts = await keeper.record_snapshot(
        Venue.OFFCHAIN, {"AAPL": Decimal(84), USDC: Decimal(10000)}, complete=True
    )
    assert snap.skipped == ("AAPL",) and drifts == []
    aapl = keeper.book.assets["AAPL"]
    assert (aapl.offchain.available, aapl.offchain.inflight) == (Decimal(84), Decimal(10))
    with pytest.raises(ConcurrentAppendError):
        await log.append(op_stream("m1"), [], core_position=0, expected=0)
    live = keeper.book.assets
    await log.close()

    # restart: a fresh fold of both logs equals the live book
    log2 = RebalancingLog(db)
    await log2.open()
    rebuilt = await InventoryKeeper(log2).refresh()
    assert rebuilt.assets == live
    await log2.close()


def test_a_reorg_correction_entry_moves_onchain_like_a_fill() -> None:
    import attrs

    from st0x_liquidity.domain.events import StoredEvent
    from st0x_liquidity.rebalancing.inventory import InventoryBook

    @attrs.frozen
    class Correction:  # the shape of FillReverted / FillReinstated: a compensating Fill
        TYPE = "FillReverted"
        entry: object

    book = InventoryBook()
    book.apply_core(
        1,
        StoredEvent(
            "Position", "AAPL", 1, FillRecorded(fill(1, "tAAPL", "BUY", "10", "100")), {}, T0
        ),
    )
    reverted = Correction(fill(1, "tAAPL", "SELL", "10", "100", log_index=10**9))
    book.apply_core(2, StoredEvent("Position", "AAPL", 2, reverted, {}, T0))  # type: ignore[arg-type]
    assert book.assets["AAPL"].onchain.available == 0
    assert book.assets[USDC].onchain.available == 0
    assert book.fill_txs == [fill(1, "tAAPL", "BUY", "10").trade_id.tx_hash]

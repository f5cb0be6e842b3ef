"""Reorgs: a fill that leaves the canonical chain is reversed with a recorded event."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from support.executors import ScriptedExecutor
from support.fills import fill, tx
from support.harness import QueueSource, make_config, start_engine, stop, wait_for

from st0x_liquidity.audit import audit_report
from st0x_liquidity.domain.fills import TradeId
from st0x_liquidity.protocols import FillItem, RevertedItem


async def test_revert_after_hedge_leaves_exposure_the_next_hedge_corrects(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "BUY", "2", "150"))
    await wait_for(lambda: engine.status.hedges_filled == 1)  # SELL 2 at the broker
    source.push_item(RevertedItem(TradeId(tx(1), 0), "reorg: block 1 replaced", {"n": 2}))
    # The fill is gone but the hedge stays: short 2, so the engine buys 2 back.
    await wait_for(lambda: engine.status.hedges_filled == 2)
    sides = [(o.side.value, o.quantity) for o in executor.orders.values()]
    assert sides == [("SELL", Decimal(2)), ("BUY", Decimal(2))]
    [position] = await store.positions()
    assert position.net == 0
    events = await store.fetch("SELECT event_type FROM events WHERE event_type = 'FillReverted'")
    assert len(events) == 1
    report = await audit_report(store.reads)
    assert all(f["explained"] for f in report["fills"])
    [entry] = [f for f in report["fills"] if f["corrects"]]
    assert entry["corrects"] == f"{tx(1)}:0" and entry["direction"] == "SELL"
    await stop(engine, task, store)


async def test_revert_before_hedge_nets_away_and_reinstatement_counts_again(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    executor.clock = executor.clock.__class__(False)  # market closed: nothing hedged
    source = QueueSource()
    config = make_config(tmp_path)
    engine, store, task = await start_engine(config, executor, source)
    original = fill(7, "tTSLA", "SELL", "0.5", "200")
    source.push(original)
    source.push_item(RevertedItem(original.trade_id, "reorg", {"n": 2}))
    source.push_item(RevertedItem(original.trade_id, "reorg again", {"n": 3}))  # already reverted
    source.push_item(RevertedItem(TradeId(tx(99), 0), "reorg of a stranger", {"n": 4}))
    await wait_for(lambda: engine.status.inputs_skipped == 2)

    async def netted_away() -> bool:
        # Counters move when a batch is applied, before its commit lands.
        positions = await store.positions()
        return len(positions) == 1 and positions[0].net == 0 and positions[0].fills == 2

    await wait_for(netted_away)
    await stop(engine, task, store)

    # After a restart, the fill comes back on the new canonical chain: counted again.
    source2 = QueueSource()
    engine, store, task = await start_engine(config, executor, source2)
    source2.push_item(FillItem(original, {"n": 5}))
    source2.push_item(FillItem(original, {"n": 6}))  # and a duplicate of that
    await wait_for(lambda: engine.status.fills_ingested + engine.status.duplicates_dropped == 2)

    async def reinstated() -> bool:
        [position] = await store.positions()
        return position.net == Decimal("-0.5")

    await wait_for(reinstated)  # status counters move before the commit lands
    assert engine.status.duplicates_dropped == 1
    kinds = await store.fetch(
        "SELECT event_type FROM events WHERE aggregate_type = 'Position' ORDER BY sequence"
    )
    assert [k for (k,) in kinds] == ["FillRecorded", "FillReverted", "FillReinstated"]
    before = await store.fetch("SELECT * FROM onchain_trades ORDER BY arrival")
    await store.rebuild_views()
    assert await store.fetch("SELECT * FROM onchain_trades ORDER BY arrival") == before
    await stop(engine, task, store)

"""The rebalancer beside a real engine: fills make an imbalance, the trigger fires (dry run)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest
from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config, start_engine, stop, wait_for

from st0x_liquidity.rebalancing.events import TriggerDecided
from st0x_liquidity.rebalancing.inventory import Venue
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.service import Rebalancer


@pytest.mark.asyncio
async def test_fills_through_engine_trigger_a_dry_run_decision(tmp_path: Path) -> None:
    config = make_config(tmp_path, rebalancing={"dry_run": True, "snapshot_interval": 3600})
    section = config.sections["rebalancing"]
    source = QueueSource()
    engine, store, task = await start_engine(config, ScriptedExecutor(), source)
    rebalancer = Rebalancer(config.database_path, section, None)
    await rebalancer.open()
    # balanced start: 50 tokens onchain, 50 shares at the broker
    await rebalancer.keeper.record_snapshot(Venue.ONCHAIN, {"AAPL": Decimal(50)}, complete=False)
    await rebalancer.keeper.record_snapshot(Venue.OFFCHAIN, {"AAPL": Decimal(50)}, complete=False)
    assert await rebalancer.check() == []
    await rebalancer.close()

    committed_at: list[float] = []
    engine.add_listener(lambda _s: committed_at.append(time.perf_counter()))
    engine.add_listener(lambda _s: rebalancer.wake())
    service = asyncio.create_task(rebalancer.run())
    reader = RebalancingLog(config.database_path)
    await reader.open()
    try:
        # the maker sells 40 tokens onchain; the hedge buys 40 shares: 10 vs 90
        source.push(fill(1, "tAAPL", "SELL", "40", "100"))
        decided_at: list[float] = []

        async def decided() -> bool:
            items = await reader.read()
            found = [e for _, _, _, e in items if isinstance(e, TriggerDecided)]
            if found and not decided_at:
                decided_at.append(time.perf_counter())
            return any(e.quantity == Decimal(40) for e in found)

        await wait_for(decided, 20)
        items = await reader.read()
        decisions = [e for _, _, _, e in items if isinstance(e, TriggerDecided)]
        assert decisions[-1].action == "mint" and decisions[-1].outcome == "dry-run"
        assert decided_at[0] - committed_at[0] < 1.0
        print(f"imbalance commit -> decision: {(decided_at[0] - committed_at[0]) * 1000:.1f} ms")
    finally:
        await reader.close()
        service.cancel()
        await asyncio.gather(service, return_exceptions=True)
        await stop(engine, task, store)

"""``recorded_at`` is when a commit happened, never before its events reached the engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config, start_engine, stop, wait_for


async def test_recorded_at_follows_arrival_and_hedge_latency_is_the_real_one(
    tmp_path: Path,
) -> None:
    executor = ScriptedExecutor()
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    arrivals: dict[str, datetime] = {}
    for n in range(1, 41):
        f = fill(n, "tAAPL", "SELL" if n % 3 else "BUY", "0.7", "150")
        arrivals[f.trade_id.text] = datetime.now(UTC)
        source.push(f)
        await asyncio.sleep(0.02 if n % 5 else 0.15)  # commits queue behind each other at times
    await wait_for(lambda: engine.status.fills_ingested == 40)
    await wait_for(lambda: engine.status.hedges_filled >= 5)
    await stop(engine, task, store)

    async with type(store)(store.path, read_only=True) as reader:
        rows = await reader.fetch(
            "SELECT tx_hash || ':' || log_index, recorded_at FROM onchain_trades"
        )
        assert len(rows) == 40
        for trade, recorded in rows:
            assert datetime.fromisoformat(recorded) >= arrivals[trade], trade
        # The hedge latency the dashboard reports: a hedge closes moments after
        # the fill that triggered it, in the log's own timestamps.
        events = await reader.fetch(
            "SELECT event_type, recorded_at FROM events WHERE aggregate_type = 'Position' "
            "ORDER BY rowid"
        )
    last_fill = None
    gaps = []
    for event_type, recorded in events:
        when = datetime.fromisoformat(recorded)
        if event_type == "FillRecorded":
            last_fill = when
        elif event_type == "HedgeClosed" and last_fill is not None:
            gaps.append((when - last_fill).total_seconds())
    assert gaps and all(0 <= g < 1.0 for g in gaps), gaps

"""Where a batch's cursor is recorded: on its last item's event, once a batch."""

from __future__ import annotations

import json
from pathlib import Path

from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config

from st0x_liquidity.engine import Engine
from st0x_liquidity.protocols import FillItem
from st0x_liquidity.store.sqlite import SqliteStore


async def _metadata(store: SqliteStore) -> list[tuple[str, dict[str, object]]]:
    rows = await store.fetch("SELECT event_type, metadata FROM events ORDER BY rowid")
    return [(kind, json.loads(meta)) for kind, meta in rows]


async def test_only_the_last_fill_of_a_batch_carries_the_cursor(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with SqliteStore(config.database_path) as store:
        source = QueueSource()
        engine = Engine(config, store, ScriptedExecutor(), source, database_id=store.database_id)
        fills = [fill(n, "tAAPL" if n % 2 else "tTSLA", "BUY", "0.1") for n in range(1, 8)]
        await engine.ingest_batch([FillItem(f, {"n": n}) for n, f in enumerate(fills[:4], 1)])
        await engine.ingest_batch([FillItem(f, {"n": n}) for n, f in enumerate(fills[4:], 5)])
        metadata = await _metadata(store)
        assert [kind for kind, _ in metadata] == ["FillRecorded"] * 7
        assert [m for _, m in metadata] == [
            {"source": "test"},
            {"source": "test"},
            {"source": "test"},
            {"source": "test", "cursor": {"n": 4}},
            {"source": "test"},
            {"source": "test"},
            {"source": "test", "cursor": {"n": 7}},
        ]
        assert await store.cursor("test") == {"n": 7}


async def test_a_batch_ending_in_a_duplicate_checkpoints_its_cursor(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with SqliteStore(config.database_path) as store:
        source = QueueSource()
        engine = Engine(config, store, ScriptedExecutor(), source, database_id=store.database_id)
        first, second = fill(1, "tAAPL", "BUY", "0.1"), fill(2, "tAAPL", "BUY", "0.1")
        await engine.ingest_batch([FillItem(first, {"n": 1})])
        await engine.ingest_batch([FillItem(second, {"n": 2}), FillItem(first, {"n": 3})])
        metadata = await _metadata(store)
        assert metadata == [
            ("FillRecorded", {"source": "test", "cursor": {"n": 1}}),
            ("FillRecorded", {"source": "test"}),
            ("CursorCheckpointed", {"source": "test", "cursor": {"n": 3}}),
        ]
        assert await store.cursor("test") == {"n": 3}
        await store.rebuild_views()
        assert await store.cursor("test") == {"n": 3}

"""Build a real engine over a real SQLite file with a controllable source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from st0x_liquidity.config import AppConfig, parse_config
from st0x_liquidity.domain.fills import Fill
from st0x_liquidity.engine import Engine
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.protocols import Cursor, FillItem, SourceItem
from st0x_liquidity.store.sqlite import SqliteStore


class QueueSource:
    """Yields what tests push; ends when ``end()`` is called."""

    name = "test"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SourceItem | None] = asyncio.Queue()
        self.resumed_from: list[Cursor | None] = []
        self.count = 0

    def push(self, *fills: Fill) -> None:
        for f in fills:
            self.count += 1
            self.queue.put_nowait(FillItem(f, {"n": self.count}))

    def push_item(self, item: SourceItem) -> None:
        self.queue.put_nowait(item)

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def stream(self, cursor: Cursor | None) -> AsyncIterator[SourceItem]:
        self.resumed_from.append(cursor)
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        return None


def make_config(tmp: Path, **sections: dict[str, Any]) -> AppConfig:
    raw: dict[str, Any] = {
        "database_url": str(tmp / "st0x.db"),
        "source": {"type": "replay", "path": str(tmp / "fills.jsonl")},
        "broker": {"type": "dry-run"},
        "hedging": {
            "poll_interval": 0.01,
            "poll_jitter": 0.0,
            "failure_backoff": 0.05,
            "failure_backoff_max": 0.1,
            "retry_backoff_max": 0.05,
            "clock_recheck": 0.05,
        },
        "engine": {"shutdown_timeout": 1.0, "drain_timeout": 5.0},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return parse_config(raw, load_registry(), config_dir=tmp, env={})


async def start_engine(
    config: AppConfig, executor: Any, source: Any, store: SqliteStore | None = None
) -> tuple[Engine, SqliteStore, asyncio.Task[None]]:
    store = store or SqliteStore(config.database_path)
    await store.open()
    engine = Engine(config, store, executor, source, database_id=store.database_id)
    task = asyncio.create_task(engine.run())
    return engine, store, task


async def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def stop(engine: Engine, task: asyncio.Task[None], store: SqliteStore) -> None:
    engine.request_stop()
    await asyncio.wait_for(task, 10)
    await store.close()


def views(rows: Sequence[Any]) -> list[Any]:
    return [tuple(r) for r in rows]

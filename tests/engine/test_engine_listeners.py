"""Listeners hear of every commit, even one whose waiter was cancelled (shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config

from st0x_liquidity.domain.events import FillRecorded, StoredEvent, position_event
from st0x_liquidity.engine import Engine
from st0x_liquidity.store.sqlite import SqliteStore


@contextlib.asynccontextmanager
async def _engine(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Engine]]:
    """A store and an engine that is not run: the tests drive its commits directly."""
    config = make_config(tmp_path)
    async with SqliteStore(config.database_path) as store:
        yield (
            store,
            Engine(config, store, ScriptedExecutor(), QueueSource(), database_id=store.database_id),
        )


async def test_a_commit_whose_waiter_is_cancelled_still_reaches_the_listeners(
    tmp_path: Path,
) -> None:
    async with _engine(tmp_path) as (store, engine):
        heard: list[StoredEvent] = []

        def listener(stored: Sequence[StoredEvent]) -> None:
            heard.extend(stored)

        engine.add_listener(listener)
        f = fill(1, "tAAPL", "BUY", "0.3")
        waiter = asyncio.create_task(engine.append([position_event(f.symbol, FillRecorded(f))]))
        await asyncio.sleep(0)  # submitted: the writer has it
        waiter.cancel()  # as shutdown cancels the engine's tasks
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await store.flush()
        assert (await store.fetch("SELECT COUNT(*) FROM events"))[0][0] == 1
        assert [s.event for s in heard] == [FillRecorded(f)]


async def test_listeners_hear_commits_in_commit_order_and_before_the_waiter_resumes(
    tmp_path: Path,
) -> None:
    async with _engine(tmp_path) as (_store, engine):
        heard: list[int] = []
        engine.add_listener(lambda stored: heard.extend(s.event.fill.block_number for s in stored))
        fills = [fill(n, "tAAPL", "BUY", "0.1") for n in range(1, 6)]
        results = await asyncio.gather(
            *(engine.append([position_event(f.symbol, FillRecorded(f))]) for f in fills)
        )
        assert heard == [1, 2, 3, 4, 5]
        assert [r[0].sequence for r in results] == [1, 2, 3, 4, 5]

"""A stream collector for tools/bench_raindex.py (same idea as the tests' Collector)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from st0x_liquidity.protocols import FillItem, SourceItem


class Collector:
    def __init__(self, source: Any, cursor: Any = None) -> None:
        self.source = source
        self.items: list[SourceItem] = []
        self.fills: list[FillItem] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(cursor))

    async def _run(self, cursor: Any) -> None:
        async for item in self.source.stream(cursor):
            self.items.append(item)
            if isinstance(item, FillItem):
                self.fills.append(item)
            self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self.task.done():
                    self.task.result()
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.5)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.source.close()

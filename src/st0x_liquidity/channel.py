"""A bounded FIFO from the intake task to the ingest task, read in batches.

``asyncio.Queue`` costs a few microseconds per item through ``put`` and
``get_nowait`` (its checks and waiter bookkeeping run for every item), which
was several percent of the engine's time per fill. With exactly one producer
and one consumer, a deque and two wake-up futures do the same job.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Channel(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> bool:
        """Append ``item`` unless the channel is full (then False, and nothing changes).

        The intake's path for every item: calling ``put`` makes and runs a
        coroutine per item even when it never waits.
        """
        if len(self._items) >= self._maxsize:
            return False
        self._items.append(item)
        _wake(self._readable)
        return True

    async def put(self, item: T) -> None:
        """Append ``item``, waiting while the channel is full."""
        while len(self._items) >= self._maxsize:
            waiter = self._writable = asyncio.get_running_loop().create_future()
            await waiter
        self._items.append(item)
        _wake(self._readable)

    async def get_batch(self, limit: int) -> list[T]:
        """The oldest items, at most ``limit``, as soon as there is at least one."""
        while not self._items:
            waiter = self._readable = asyncio.get_running_loop().create_future()
            await waiter
        items = self._items
        if len(items) <= limit:  # the usual case: everything, copied in C
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(limit)]
        _wake(self._writable)
        return batch


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)

"""The node's new-heads subscription: what wakes the walk, and how a dead one is noticed.

Over WebSocket each new block wakes the walk at once, so a fill is read within a
block of landing. Load-balanced RPCs can stall a subscription silently (the socket
stays open, the notices stop), so silence longer than ``stall_timeout`` is checked:
if the chain moved on meanwhile, the subscription is dead and the source
reconnects; a quiet chain (a devnet between transactions) is not a dead socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .node import Node, NodeUnavailable, raise_if_cancelled

Request = Callable[[str, list[Any]], Awaitable[Any]]
"""A JSON-RPC method and its params to the node's answer (the source's walk requests)."""


class StallError(Exception):
    """The subscription went silent for longer than the stall timeout."""


class Heads:
    """The newest block the node announced or reported, and when it last announced one."""

    def __init__(self) -> None:
        self.number = -1
        """The newest block number seen (-1 before any)."""
        self.last = time.monotonic()
        """When the subscription last spoke (or the source last connected)."""
        self._wake = asyncio.Event()

    def heard(self) -> None:
        self.last = time.monotonic()

    def announced(self, head: dict[str, Any]) -> None:
        """A new-heads notice: remember its number and wake the walk."""
        number = head.get("number")
        if isinstance(number, int):
            self.number = max(self.number, number)
        elif isinstance(number, str) and number.startswith("0x"):
            self.number = max(self.number, int(number, 16))
        self.heard()
        self._wake.set()

    async def wait(
        self, node: Node, poll_interval: float, stall_timeout: float, request: Request
    ) -> None:
        """Until the next notice or ``poll_interval``; raise if the subscription is dead."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), poll_interval)
        raise_if_cancelled()
        if not node.alive:
            raise NodeUnavailable(node.closed_reason or "connection closed")
        silent = time.monotonic() - self.last
        if silent > stall_timeout:
            # Silence is a stall only if the chain moved on without telling us; a quiet
            # chain (a devnet between transactions) is not a dead socket.
            head = int(await request("eth_blockNumber", []), 16)
            if head > self.number:
                raise StallError(
                    f"no new-head notice for {silent:.1f}s while the chain reached block {head} "
                    f"(last notice: {self.number}; stall timeout {stall_timeout}s)"
                )
            self.heard()

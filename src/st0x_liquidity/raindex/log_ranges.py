"""Reading the orderbook's fill logs one block range at a time, at a size the node accepts.

Nodes cap ``eth_getLogs`` (by blocks, by results or by answer size) and say so in
different ways: an error, or a dropped connection when the answer is too large for
the transport. The walk does not know the cap in advance, so the range is halved on
every refusal until it passes, and doubled back towards ``max_block_range`` after each
full answer (a node's cap may be about results, which vary along the chain).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from . import abi
from .node import NodeUnavailable, RpcError

log = logging.getLogger("st0x_liquidity.raindex.source")
"""The source's logger: its lines keep the one name operators filter on."""

Request = Callable[[str, list[Any]], Awaitable[Any]]
"""A JSON-RPC method and its params to the node's answer (the source's walk requests)."""


class RangeRace(Exception):
    """The chain changed while a range was being read: read it again."""


@attrs.define
class RangeSize:
    """How many blocks the next ``eth_getLogs`` asks for (1..``maximum``)."""

    maximum: int
    current: int = attrs.field()

    @current.default
    def _start_at_maximum(self) -> int:
        return self.maximum

    def halve(self, start: int, end: int) -> None:
        """The node refused (or dropped) ``start..end``: ask for half of it next."""
        self.current = max(1, (end - start + 1) // 2)

    def answered(self, start: int, end: int) -> None:
        """The node answered ``start..end``: a full range lets the size grow back."""
        if self.current < self.maximum and end - start + 1 >= self.current:
            self.current = min(self.maximum, self.current * 2)


def log_filter(orderbook: str, start: int, end: int) -> dict[str, Any]:
    """The ``eth_getLogs`` filter for the fill events of ``orderbook`` in blocks ``start..end``."""
    return {
        "fromBlock": hex(start),
        "toBlock": hex(end),
        "address": orderbook,
        "topics": [["0x" + abi.topic0(name).hex() for name in abi.FILL_EVENTS]],
    }


async def get_logs(
    request: Request,
    orderbook: str,
    start: int,
    end: int,
    *,
    size: RangeSize,
    stats: dict[str, int],
) -> tuple[int, list[Any]]:
    """Logs of blocks ``start..end'`` and ``end'`` (≤ end: the node may refuse big ranges)."""
    while True:
        params = log_filter(orderbook, start, end)
        stats["get_logs"] += 1
        try:
            result = await request("eth_getLogs", [params])
        except NodeUnavailable:
            # An answer too large for the transport can drop the connection
            # instead of returning an error: ask for less after reconnecting.
            size.halve(start, end)
            raise
        except RpcError as exc:
            if end <= start:
                raise
            stats["get_logs_refused"] += 1
            size.halve(start, end)
            log.info(
                "raindex: node refused logs %d-%d (%s); range now %d",
                start,
                end,
                exc.text,
                size.current,
            )
            end = start + size.current - 1
            continue
        if not isinstance(result, list):
            raise NodeUnavailable(f"eth_getLogs returned {type(result).__name__}, not a list")
        size.answered(start, end)
        return end, result

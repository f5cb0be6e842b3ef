"""The rebalancing log: rebalancing's events, kept in the bot's database.

Storage (its own connection and table, the append check) lives in
:mod:`st0x_liquidity.store.rebalancing_log`; this module turns rebalancing
events into payloads and back, so the bot, the ``rebalance`` CLI and a rebuild
go through the same database and the same code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..domain.events import (
    FillRecorded,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    StoredEvent,
)
from ..store.rebalancing_log import ConcurrentAppendError, SqliteRebalancingLog
from ..store.sqlite_reads import SqliteReads
from .events import RebalancingEvent, from_payload, to_payload

__all__ = ["CORE_TYPES", "ConcurrentAppendError", "LogItem", "RebalancingLog"]

CORE_TYPES = (
    FillRecorded.TYPE,
    "FillReverted",  # reorg corrections: their ``entry`` moves inventory like a fill
    "FillReinstated",
    HedgeIntended.TYPE,
    HedgeProgressed.TYPE,
    HedgeClosed.TYPE,
)


LogItem = tuple[int, int, str, RebalancingEvent]
"""(position, core_position, stream, event)."""


class RebalancingLog:
    def __init__(self, where: Path | str) -> None:
        """``where``: the bot's SQLite file or PostgreSQL URL."""
        self.where = where
        self._log = SqliteRebalancingLog(where)

    async def open(self) -> None:
        await self._log.open()

    async def close(self) -> None:
        await self._log.close()

    @property
    def is_open(self) -> bool:
        return self._log.is_open

    @property
    def reads(self) -> SqliteReads:
        """Read models on the log's connection (e.g. the rebalancing cost)."""
        return self._log.reads

    async def append(
        self,
        stream: str,
        events: Sequence[RebalancingEvent],
        *,
        core_position: int,
        expected: int | None = None,
    ) -> int:
        """Append to ``stream``; with ``expected``, only if the stream has that many events.

        Returns the stream's new length.
        """
        payloads = [(e.TYPE, json.dumps(to_payload(e), separators=(",", ":"))) for e in events]
        return await self._log.append(
            stream, payloads, core_position=core_position, expected=expected
        )

    async def read(self, after: int = 0, stream: str | None = None) -> list[LogItem]:
        return [
            (
                r.position,
                r.core_position,
                r.stream,
                from_payload(r.event_type, json.loads(r.payload)),
            )
            for r in await self._log.read(after, stream)
        ]

    async def streams_with_prefix(self, prefix: str) -> list[str]:
        return await self._log.streams_with_prefix(prefix)

    async def core_events(self, after: int, limit: int = 5000) -> list[tuple[int, StoredEvent]]:
        """Core events that move inventory (fills, hedge fills), after rowid ``after``."""
        return await self._log.core_events(after, CORE_TYPES, limit)

    async def core_head(self) -> int:
        return await self._log.core_head()

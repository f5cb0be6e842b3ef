"""Rebalancing's own log (``rebalancing_events``) and its reads of the core log.

Rebalancing writes beside a running engine (the bot's service, the
``rebalance`` CLI, a rebuild), so it keeps a connection of its own: its
transactions stay apart from the engine's (SQLite: WAL lets readers and one
writer coexist, ``busy_timeout`` serialises writers; PostgreSQL: an advisory
lock serialises appenders) and touch only ``rebalancing_events``. ``append`` checks the stream's next sequence inside
its transaction: two processes cannot both advance one operation.

Payloads cross this module as JSON text; what they mean is rebalancing's
business (:mod:`st0x_liquidity.rebalancing.events`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from ..domain.events import StoredEvent
from ..errors import StoreError
from .codec import event_from_payload
from .side_db import ERRORS, SideDb, Where, explain
from .sqlite_reads import SqliteReads
from .stores import store_at


class ConcurrentAppendError(StoreError):
    """Another writer advanced the stream first."""


@attrs.frozen
class RebalancingRecord:
    """One event of the rebalancing log, at its global ``position``."""

    position: int
    core_position: int
    """How far the core log had been read when it was recorded."""
    stream: str
    event_type: str
    payload: str


class SqliteRebalancingLog:
    """The rebalancing log on the bot's database at ``where``: a SQLite file or a
    PostgreSQL URL (the name is historical; both backends are served)."""

    def __init__(self, where: Where) -> None:
        self.where = where
        self._db: SideDb | None = None
        self._write_lock = asyncio.Lock()  # one transaction at a time on this connection

    @property
    def is_open(self) -> bool:
        return self._db is not None

    @property
    def reads(self) -> SqliteReads:
        """The read models on this connection (the P&L summary's rebalancing cost)."""
        return self._side.reads

    async def open(self) -> None:
        store = store_at(self.where, lease=False)  # applies migrations (incl. rebalancing_events)
        await store.open()
        await store.close()
        self._db = await SideDb.open(self.where)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def _side(self) -> SideDb:
        if self._db is None:
            raise StoreError("rebalancing log is not open")
        return self._db

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._side.fetch(sql, params)

    async def append(
        self,
        stream: str,
        events: Sequence[tuple[str, str]],
        *,
        core_position: int,
        expected: int | None = None,
    ) -> int:
        """Append ``(event_type, payload)`` pairs to ``stream``; with ``expected``, only
        if the stream has that many events. Returns the stream's new length."""
        async with self._write_lock:
            return await self._append(stream, events, core_position, expected)

    async def _append(
        self,
        stream: str,
        events: Sequence[tuple[str, str]],
        core_position: int,
        expected: int | None,
    ) -> int:
        db = self._side
        now = datetime.now(UTC).isoformat()
        try:
            # The lock serialises appenders (SQLite: BEGIN IMMEDIATE), so the
            # length read here is the stream's until the commit.
            async with db.transaction("rebalancing_events"):
                rows = await db.fetch(
                    "SELECT COALESCE(MAX(sequence), 0) FROM rebalancing_events WHERE stream = ?",
                    (stream,),
                )
                length = int(rows[0][0]) if rows else 0
                if expected is not None and length != expected:
                    raise ConcurrentAppendError(
                        f"{stream} has {length} events, expected {expected} "
                        "(another process moved it)"
                    )
                await db.executemany(
                    "INSERT INTO rebalancing_events "
                    "(stream, sequence, event_type, payload, core_position, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (stream, length + i + 1, event_type, payload, core_position, now)
                        for i, (event_type, payload) in enumerate(events)
                    ],
                )
        except ERRORS as exc:
            raise StoreError(f"could not append to {stream}: {explain(self.where, exc)}") from exc
        return length + len(events)

    async def read(self, after: int = 0, stream: str | None = None) -> list[RebalancingRecord]:
        sql = (
            "SELECT position, core_position, stream, event_type, payload FROM rebalancing_events "
            "WHERE position > ?"
        )
        params: list[object] = [after]
        if stream is not None:
            sql += " AND stream = ?"
            params.append(stream)
        return [
            RebalancingRecord(int(p), int(c), str(s), str(t), str(payload))
            for p, c, s, t, payload in await self._fetch(sql + " ORDER BY position", params)
        ]

    async def streams_with_prefix(self, prefix: str) -> list[str]:
        rows = await self._fetch(
            "SELECT DISTINCT stream FROM rebalancing_events WHERE stream LIKE ? ORDER BY stream",
            (prefix + "%",),
        )
        return [str(r[0]) for r in rows]

    async def core_events(
        self, after: int, event_types: Sequence[str], limit: int
    ) -> list[tuple[int, StoredEvent]]:
        """Core events of ``event_types`` after log position ``after``, in log order."""
        marks = ",".join("?" for _ in event_types)
        pos = self._side.event_position
        rows = await self._fetch(
            f"SELECT {pos}, aggregate_type, aggregate_id, sequence, event_type, payload, "
            f"metadata, recorded_at FROM events WHERE {pos} > ? AND event_type IN ({marks}) "
            f"ORDER BY {pos} LIMIT ?",
            (after, *event_types, limit),
        )
        return [
            (
                int(rowid),
                StoredEvent(
                    str(agg_type),
                    str(agg_id),
                    int(seq),
                    event_from_payload(str(event_type), json.loads(payload)),
                    json.loads(metadata),
                    datetime.fromisoformat(recorded),
                ),
            )
            for rowid, agg_type, agg_id, seq, event_type, payload, metadata, recorded in rows
        ]

    async def core_head(self) -> int:
        """The core log's last position (0 when empty)."""
        pos = self._side.event_position
        rows = await self._fetch(f"SELECT COALESCE(MAX({pos}), 0) FROM events")
        return int(rows[0][0]) if rows else 0

"""Rebalancing's own log (``rebalancing_events``) and its reads of the core log.

Rebalancing writes beside a running engine (the bot's service, the
``rebalance`` CLI, a rebuild), so it keeps a connection of its own: its
transactions stay apart from the engine's (WAL lets readers and one writer
coexist; ``busy_timeout`` serialises writers) and touch only
``rebalancing_events``. ``append`` checks the stream's next sequence inside
its transaction: two processes cannot both advance one operation.

Payloads cross this module as JSON text; what they mean is rebalancing's
business (:mod:`st0x_liquidity.rebalancing.events`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import attrs

from ..domain.events import StoredEvent
from ..errors import StoreError
from .codec import event_from_payload
from .sqlite import SqliteStore
from .sqlite_reads import SqliteReads


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
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()  # one transaction at a time on this connection
        self.reads = SqliteReads(self._fetch)
        """The read models on this connection (the P&L summary's rebalancing cost)."""

    @property
    def is_open(self) -> bool:
        return self._db is not None

    async def open(self) -> None:
        store = SqliteStore(self.path, lease=False)  # applies migrations (incl. rebalancing_events)
        await store.open()
        await store.close()
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("PRAGMA busy_timeout=10000")
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("rebalancing log is not open")
        return self._db

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._conn.execute(sql, params) as cur:
            return [tuple(r) for r in await cur.fetchall()]

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
        db = self._conn
        now = datetime.now(UTC).isoformat()
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute(
                "SELECT COALESCE(MAX(sequence), 0) FROM rebalancing_events WHERE stream = ?",
                (stream,),
            ) as cur:
                row = await cur.fetchone()
            length = int(row[0]) if row else 0
            if expected is not None and length != expected:
                raise ConcurrentAppendError(
                    f"{stream} has {length} events, expected {expected} (another process moved it)"
                )
            rows = [
                (stream, length + i + 1, event_type, payload, core_position, now)
                for i, (event_type, payload) in enumerate(events)
            ]
            await db.executemany(
                "INSERT INTO rebalancing_events "
                "(stream, sequence, event_type, payload, core_position, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            await db.execute("COMMIT")
        except BaseException as exc:
            await db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"could not append to {stream}: {exc}") from exc
            raise
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
        rows = await self._fetch(
            "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, payload, "
            f"metadata, recorded_at FROM events WHERE rowid > ? AND event_type IN ({marks}) "
            "ORDER BY rowid LIMIT ?",
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
        rows = await self._fetch("SELECT COALESCE(MAX(rowid), 0) FROM events")
        return int(rows[0][0]) if rows else 0

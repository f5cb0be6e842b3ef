"""The rebalancing log: its own connection to the bot's SQLite file.

A separate connection keeps its transactions apart from the engine's (SQLite
WAL lets readers and one writer coexist; ``busy_timeout`` serialises writers),
so the bot, the ``rebalance`` CLI and a rebuild all go through the same file
and the same code. ``append`` checks the stream's next sequence inside the
transaction: two processes cannot both advance one operation.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from ..domain.events import (
    FillRecorded,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    StoredEvent,
)
from ..domain.events import event_from_payload as core_from_payload
from ..errors import StoreError
from ..store.sqlite import SqliteStore
from ..store.sqlite_reads import SqliteReads
from .events import RebalancingEvent, from_payload, to_payload

CORE_TYPES = (
    FillRecorded.TYPE,
    "FillReverted",  # reorg corrections: their ``entry`` moves inventory like a fill
    "FillReinstated",
    HedgeIntended.TYPE,
    HedgeProgressed.TYPE,
    HedgeClosed.TYPE,
)


class ConcurrentAppendError(StoreError):
    """Another writer advanced the stream first."""


LogItem = tuple[int, int, str, RebalancingEvent]
"""(position, core_position, stream, event)."""


class RebalancingLog:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()  # one transaction at a time on this connection

    async def open(self) -> None:
        store = SqliteStore(self.path)  # applies migrations (incl. rebalancing_events)
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
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("rebalancing log is not open")
        return self._db

    @property
    def reads(self) -> SqliteReads:
        return SqliteReads(self._fetch)

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        async with self.db.execute(sql, params) as cur:
            return [tuple(r) for r in await cur.fetchall()]

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
        async with self._write_lock:
            return await self._append(stream, events, core_position, expected)

    async def _append(
        self,
        stream: str,
        events: Sequence[RebalancingEvent],
        core_position: int,
        expected: int | None,
    ) -> int:
        db = self.db
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
                (
                    stream,
                    length + i + 1,
                    e.TYPE,
                    json.dumps(to_payload(e), separators=(",", ":")),
                    core_position,
                    now,
                )
                for i, e in enumerate(events)
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

    async def read(self, after: int = 0, stream: str | None = None) -> list[LogItem]:
        sql = (
            "SELECT position, core_position, stream, event_type, payload FROM rebalancing_events "
            "WHERE position > ?"
        )
        params: list[object] = [after]
        if stream is not None:
            sql += " AND stream = ?"
            params.append(stream)
        async with self.db.execute(sql + " ORDER BY position", params) as cur:
            rows = await cur.fetchall()
        return [
            (int(p), int(c), str(s), from_payload(str(t), json.loads(payload)))
            for p, c, s, t, payload in rows
        ]

    async def streams_with_prefix(self, prefix: str) -> list[str]:
        async with self.db.execute(
            "SELECT DISTINCT stream FROM rebalancing_events WHERE stream LIKE ? ORDER BY stream",
            (prefix + "%",),
        ) as cur:
            rows = await cur.fetchall()
        return [str(r[0]) for r in rows]

    async def core_events(self, after: int, limit: int = 5000) -> list[tuple[int, StoredEvent]]:
        """Core events that move inventory (fills, hedge fills), after rowid ``after``."""
        marks = ",".join("?" for _ in CORE_TYPES)
        async with self.db.execute(
            "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, payload, "
            f"metadata, recorded_at FROM events WHERE rowid > ? AND event_type IN ({marks}) "
            "ORDER BY rowid LIMIT ?",
            (after, *CORE_TYPES, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [
            (
                int(rowid),
                StoredEvent(
                    str(agg_type),
                    str(agg_id),
                    int(seq),
                    core_from_payload(str(event_type), json.loads(payload)),
                    json.loads(metadata),
                    datetime.fromisoformat(recorded),
                ),
            )
            for rowid, agg_type, agg_id, seq, event_type, payload, metadata, recorded in rows
        ]

    async def core_head(self) -> int:
        async with self.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM events") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

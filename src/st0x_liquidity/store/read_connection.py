"""A read-only connection of a reader's own, with the read models on it.

The dashboard follows the log beside a running engine: on a connection of its
own, long reads (folding the whole history at start) never queue behind the
engine's, and WAL lets it read while the engine writes. ``query_only`` makes
"this reader never writes" a property of the connection, not a promise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from ..errors import StoreError
from .sqlite_reads import SqliteReads

BUSY_TIMEOUT_MS = 10000


class ReadConnection:
    """Owns one connection; :attr:`reads` serves the read models on it."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db: aiosqlite.Connection | None = db
        self.reads = SqliteReads(self.fetch)

    @classmethod
    async def open(cls, path: Path | str) -> ReadConnection:
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {path} for reading: {exc}") from None
        try:
            await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"cannot read database {path}: {exc}") from None
        return cls(db)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._db is None:
            raise StoreError("read connection is closed")
        async with self._db.execute(sql, params) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

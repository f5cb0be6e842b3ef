"""A read-only connection of a reader's own, with the read models on it.

The dashboard follows the log beside a running engine: on a connection of its
own, long reads (folding the whole history at start) never queue behind the
engine's, and WAL lets it read while the engine writes (PostgreSQL: MVCC).
``query_only`` (PostgreSQL: ``default_transaction_read_only``) makes "this
reader never writes" a property of the connection, not a promise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .side_db import SideDb, Where
from .sqlite_reads import SqliteReads


class ReadConnection:
    """Owns one connection; :attr:`reads` serves the read models on it."""

    def __init__(self, db: SideDb) -> None:
        self._db = db
        self.reads: SqliteReads = db.reads

    @classmethod
    async def open(cls, where: Where) -> ReadConnection:
        """A SQLite file's path or a PostgreSQL URL."""
        return cls(await SideDb.open(where, read_only=True))

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._db.fetch(sql, params)

    async def close(self) -> None:
        await self._db.close()

"""A short synchronous connection for one side-table transaction, on either backend.

A CLI command (``risk set-state``) and start-up (the breaker's last change,
read before hedging starts) need one transaction and nothing more: a
connection per call, closed at once (:func:`sync_transaction`). Its
timeouts (:data:`~.side_db.SILENCE`) bound how long a silent server can
hold the caller, which may be the event loop's thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .side_db import (
    BUSY_TIMEOUT_MS,
    CONNECT_TIMEOUT,
    SILENCE,
    Where,
    is_postgres,
    lock_key,
    require_driver,
)

if TYPE_CHECKING:
    import psycopg

    from .postgres_writer import pg
else:
    try:  # the [postgres] extra; a SQLite-only install has no psycopg
        import psycopg

        from .postgres_writer import pg
    except ImportError:
        psycopg = None


class SyncDb:
    """A synchronous connection inside one transaction (:func:`sync_transaction`)."""

    def __init__(self, conn: sqlite3.Connection | psycopg.Connection[Any]) -> None:
        self._conn = conn

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not isinstance(self._conn, sqlite3.Connection):
            cur = self._conn.execute(pg(sql), params)
            return [] if cur.description is None else [tuple(r) for r in cur.fetchall()]
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]


@contextlib.contextmanager
def sync_transaction(where: Where, lock: str | None = None) -> Iterator[SyncDb]:
    """A short connection to ``where`` for one transaction, committed on exit.

    Raises the driver's error (:data:`ERRORS`); SQLite waits up to 10 s for the
    write lock, PostgreSQL for ``lock`` (an advisory lock, when given).
    """
    if is_postgres(where):
        require_driver()
        with (
            psycopg.connect(
                str(where),
                autocommit=True,
                application_name="st0x-liquidity",
                connect_timeout=CONNECT_TIMEOUT,
                **SILENCE,
            ) as conn,
            conn.transaction(),
        ):
            if lock is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(lock),))
            yield SyncDb(conn)
        return
    with contextlib.closing(sqlite3.connect(Path(where), timeout=BUSY_TIMEOUT_MS / 1000)) as db, db:
        yield SyncDb(db)

"""The store's writer connection: plain ``sqlite3``, one transaction a call, run off the loop.

Each function here is one whole unit of work on the writer connection
(:class:`~.sqlite.SqliteStore` runs it in a worker thread, one at a time):
a commit's events and view rows go to SQLite in C, without a thread hop per
statement. Every engine transaction starts by checking the lease epoch
inside it (:func:`fenced`), so a holder that lost the lease writes nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..domain.events import StoredEvent
from ..errors import StoreError
from .base import stored_from_row
from .lease import LEASE_NAME, LeaseHolder, LeaseLostError, this_holder
from .schema import LATEST_VERSION, MIGRATIONS, VIEW_TABLES, VIEWS_STALE
from .writes import Encoded, Key, append_entries, apply_event, dec_add

BUSY_TIMEOUT_MS = 10_000

EVENTS_AFTER = (
    "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, payload, metadata, "
    "recorded_at FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?"
)


class SqliteExecutor:
    """:class:`~.writes.Executor` on a ``sqlite3`` connection (``?`` is its own style)."""

    __slots__ = ("_execute",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._execute = db.execute

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._execute(sql, params)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._execute(sql, params).fetchone()
        return row

    def trade_ref(self, trade: int) -> object:
        return trade  # an integer in a column without affinity, as schema 9 stores it


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _enter_wal(db)
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint()
        db.execute("PRAGMA foreign_keys=ON")
        db.create_function("dec_add", 2, dec_add, deterministic=True)
    except BaseException:
        db.close()
        raise
    return db


def _enter_wal(db: sqlite3.Connection) -> None:
    """Switch to WAL, retrying while another connection holds the file.

    Changing the journal mode needs an exclusive lock, and SQLite does not
    always call the busy handler for it (two processes opening a new file).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or (
                time.monotonic() >= deadline
            ):
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, epoch: int | None = None) -> Iterator[None]:
    """``BEGIN IMMEDIATE … COMMIT``; with ``epoch``, fenced: it must still be the lease's."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if epoch is not None:
            holder = read_holder(db)
            if holder is None or holder.epoch != epoch:
                who = holder.describe() if holder else "nobody"
                raise LeaseLostError(
                    f"lost the lease: the database is now held by {who} "
                    f"(epoch {holder.epoch if holder else '?'}, ours was {epoch}); stopping"
                )
        yield
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def schema_version(db: sqlite3.Connection) -> int:
    if not _has_table(db, "schema_migrations"):
        return 0
    return int(db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply missing migrations, each in its own transaction (the version read inside it,
    so two processes opening a new database at once cannot both apply one)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for version, description, sql in MIGRATIONS:
        with transaction(db):
            current = schema_version(db)
            if current > LATEST_VERSION:
                raise StoreError(too_new(path, current))
            if version <= current:
                continue
            for statement in split_sql(sql):
                db.execute(statement)
            now = datetime.now(UTC).isoformat()
            if version == 1:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('database_id', ?), ('created_at', ?)",
                    (uuid.uuid4().hex[:12], now),
                )
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, now)
            )


def take_epoch(db: sqlite3.Connection) -> LeaseHolder:
    """A new epoch for this process: from now on, the previous holder's writes fail."""
    with transaction(db):
        previous = read_holder(db)
        me = this_holder((previous.epoch if previous else 0) + 1)
        db.execute(
            "INSERT INTO lease (name, epoch, pid, host, since, renewed_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "epoch = excluded.epoch, pid = excluded.pid, host = excluded.host, "
            "since = excluded.since, renewed_at = excluded.renewed_at",
            (LEASE_NAME, me.epoch, me.pid, me.host, me.since, me.since),
        )
    return me


def read_holder(db: sqlite3.Connection) -> LeaseHolder | None:
    if not _has_table(db, "lease"):
        return None
    row = db.execute(
        "SELECT epoch, pid, host, since FROM lease WHERE name = ?", (LEASE_NAME,)
    ).fetchone()
    return None if row is None else LeaseHolder(int(row[0]), int(row[1]), row[2], row[3])


def write_events(
    db: sqlite3.Connection, epoch: int, entries: Sequence[Encoded], known: dict[Key, int]
) -> tuple[list[list[StoredEvent]], dict[Key, int]]:
    """One fenced transaction: the entries' events with their sequences, and their views.

    ``known`` holds streams' last sequences from earlier commits; the ones this
    commit assigned come back for the caller to keep once it has committed.
    """
    with transaction(db, epoch):
        # After BEGIN: the commit's own time, never before its events arrived.
        return append_entries(SqliteExecutor(db), entries, known, datetime.now(UTC))


def rebuild_views(db: sqlite3.Connection, epoch: int) -> int:
    """Empty every view and refill it from the events, in one fenced transaction."""
    out = SqliteExecutor(db)
    with transaction(db, epoch):
        for table in VIEW_TABLES:
            db.execute(f"DELETE FROM {table}")
        count = last = 0
        while rows := db.execute(EVENTS_AFTER, (last, 5000)).fetchall():
            for row in rows:
                apply_event(out, stored_from_row(row)[1])
            last = int(rows[-1][0])
            count += len(rows)
        db.execute("DELETE FROM meta WHERE key = ?", (VIEWS_STALE,))
    return count


def checkpoint(db: sqlite3.Connection) -> None:
    """Copy the WAL into the database (PASSIVE: never waits for readers).

    SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000
    WAL pages, adding the database file's write and fsync to that commit: it
    was the p99 of the hedge decision latency. The store runs this after a
    commit's callers have their answer instead.
    """
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def put_blob(db: sqlite3.Connection, namespace: str, key: str, value: bytes) -> None:
    with transaction(db):
        db.execute(
            "INSERT INTO plugin_blobs VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) "
            "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (namespace, key, value, datetime.now(UTC).isoformat()),
        )


def meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def too_new(path: Path, version: int) -> str:
    return (
        f"{path} has schema version {version}, newer than this program knows "
        f"({LATEST_VERSION}); upgrade st0x-liquidity"
    )


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        is not None
    )


def split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.strip().splitlines():
        buffer.append(line)
        text = "\n".join(buffer).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            buffer = []
    if "\n".join(buffer).strip():
        statements.append("\n".join(buffer).strip())
    return statements

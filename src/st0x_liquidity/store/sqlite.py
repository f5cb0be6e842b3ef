"""SQLite event store: one file in WAL mode, one writer connection, fenced commits.

Every commit is one plain ``BEGIN IMMEDIATE … COMMIT`` on the writer
connection: it checks the lease epoch, appends the events and writes every
view row they imply, so they are durable together or not at all. Callers hand
events over with :meth:`SqliteStore.submit`, in the order their books changed;
whatever arrives while a commit runs goes into the next one (group commit),
each caller's events still all-or-nothing. Reads use a second connection, so
they see committed data only.

A store opened with ``lease=True`` (the engine, ``rebuild-views``) holds the
database's lease (:mod:`.lease`) from :meth:`open` to :meth:`close`; a
second one is refused at once. ``read_only=True`` opens the file read-only
and takes nothing: the operator's ``positions`` and ``audit`` never stand in
the engine's way.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..domain.events import StoredEvent
from ..errors import StoreError
from . import sqlite_writer as writer
from .base import EventStore, uninterrupted
from .lease import LEASE_NAME, FileLock, LeaseHeldError, LeaseHolder, LeaseLostError, this_holder
from .schema import LATEST_VERSION, VIEWS_STALE
from .sqlite_reads import SqliteReads
from .writes import Encoded, Key

log = logging.getLogger(__name__)

HOLDER_READS = 20
HOLDER_READ_PAUSE = 0.05

BUSY_TIMEOUT_MS = 10_000
_T = TypeVar("_T")
_CHECKPOINT_EVENTS = 1000
"""Events committed between WAL checkpoints (about SQLite's 1,000-page default)."""


class SqliteStore(EventStore):
    """The embedded :class:`~st0x_liquidity.protocols.PositionStore`."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        lease: bool = True,
        read_only: bool = False,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._read_only = read_only
        self._wants_lease = lease and not read_only
        self._lock = FileLock(self.path.with_name(self.path.name + "-lease"))
        self._writer: sqlite3.Connection | None = None
        self._db: aiosqlite.Connection | None = None
        self._since_checkpoint = 0

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        if self._synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"unknown sqlite synchronous mode {self._synchronous!r}")
        try:
            if self._read_only:
                await self._open_reader()
            else:
                await self._open_writer()
            self.database_id = await self._meta("database_id") or ""
        except sqlite3.DatabaseError as exc:
            await self._close_connections()
            raise StoreError(f"{self.path} is not a usable st0x database: {exc}") from None
        except BaseException:
            await self._close_connections()
            raise

    async def _open_reader(self) -> None:
        if not self.path.exists():
            raise StoreError(f"no database at {self.path} (has `run` been started?)")
        self._db = await _connect(f"file:{self.path}?mode=ro", self.path, uri=True)
        await self._db.execute(f"PRAGMA busy_timeout={writer.BUSY_TIMEOUT_MS}")
        version = await self.schema_version()
        if version > LATEST_VERSION:
            raise StoreError(writer.too_new(self.path, version))
        if version < LATEST_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, older than this program's "
                f"({LATEST_VERSION}); start `run` or `rebuild-views` once to upgrade it"
            )

    async def _open_writer(self) -> None:
        _create_private(self.path)
        if self._wants_lease and not self._lock.try_acquire(this_holder(0)):
            raise LeaseHeldError(str(self.path), await self._named_holder())
        try:
            self._writer = await asyncio.to_thread(writer.connect, self.path, self._synchronous)
        except sqlite3.OperationalError as exc:  # cannot open; not a database is reported below
            raise _open_error(self.path, exc) from None
        await self._in_writer(writer.migrate, self.path)
        self._db = await _connect(str(self.path), self.path)
        await self._db.execute(f"PRAGMA busy_timeout={writer.BUSY_TIMEOUT_MS}")
        if self._wants_lease:
            me = await self._in_writer(writer.take_epoch)
            self._epoch = me.epoch
            self._lock.record(me)
            log.debug("lease taken on %s (epoch %d)", self.path, me.epoch)
            stale = await self._meta(VIEWS_STALE)
            if stale is not None:
                log.warning("schema %s changed the views: rebuilding them from the events", stale)
                log.warning("views rebuilt from %d events", await self.rebuild_views())

    async def _in_writer(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(writer, *args)`` in a worker thread, to its end even if the caller is
        cancelled: a thread cannot be stopped, and the connection must not be closed
        (or used by the next call) while it is still inside a transaction."""
        if self._writer is None:
            raise StoreError("store is not open for writing")
        thread = asyncio.ensure_future(asyncio.to_thread(fn, self._writer, *args))
        return await uninterrupted(thread)

    async def _meta(self, key: str) -> str | None:
        async with self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def _named_holder(self) -> LeaseHolder | None:
        """Who holds the lock. A holder that took it an instant ago writes its name just
        after, so an empty lock file is read again for up to a second."""
        for _ in range(HOLDER_READS):
            holder = self._lock.holder()
            if holder is not None:
                return holder
            await asyncio.sleep(HOLDER_READ_PAUSE)
        return await self._holder()

    async def _holder(self) -> LeaseHolder | None:
        """Who holds the lease, as the database says (best effort: it names them)."""
        try:
            db = await _connect(f"file:{self.path}?mode=ro", self.path, uri=True)
        except StoreError:
            return None
        try:
            return await _holder_of(db)
        except sqlite3.Error:
            return None
        finally:
            await db.close()

    async def close(self) -> None:
        """Commit whatever was submitted, then close the connections and let the lease go."""
        await self.flush()
        async with self._write_lock:  # no writer call is still running in a thread
            await self._close_connections()

    async def _close_connections(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await self._db.close()
        if self._writer is not None:
            self._writer.close()
        self._writer = self._db = None
        self._lock.release()
        self._epoch = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        """The read connection (committed data only)."""
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def schema_version(self) -> int:
        async with self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ) as cur:
            if await cur.fetchone() is None:
                return 0
        async with self.db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- the lease -------------------------------------------------------------------

    async def verify_lease(self) -> None:
        """Raise :class:`LeaseLostError` unless this store still holds the lease.

        The engine asks before every broker call: a holder whose epoch moved
        on must not place anything.
        """
        if self._epoch is None:
            raise StoreError("this store does not hold the database's lease")
        holder = await _holder_of(self.db)
        if holder is None or holder.epoch != self._epoch:
            who = holder.describe() if holder is not None else "nobody"
            raise LeaseLostError(
                f"lost the lease on {self.path}: it is now held by {who}; stopping"
            )

    # -- writing -------------------------------------------------------------------

    def _writable(self) -> bool:
        return self._writer is not None

    async def _write(
        self, epoch: int, entries: list[Encoded], known: dict[Key, int]
    ) -> tuple[list[list[StoredEvent]], dict[Key, int]]:
        return await self._in_writer(writer.write_events, epoch, entries, known)

    async def _after_commit(self, events: int) -> None:
        self._since_checkpoint += events
        if self._since_checkpoint >= _CHECKPOINT_EVENTS:
            self._since_checkpoint = 0
            with contextlib.suppress(sqlite3.Error):  # busy: the next one catches up
                await self._in_writer(writer.checkpoint)

    async def rebuild_views(self) -> int:
        """Empty every view and refill it by replaying all events; returns the event count."""
        await self.flush()
        async with self._write_lock:
            return await self._in_writer(writer.rebuild_views, self._fence())

    async def put_blob(self, namespace: str, key: str, value: bytes) -> None:
        """Plugin state is not the engine's: ``schwab auth`` writes it beside a running bot."""
        async with self._write_lock:
            await self._in_writer(writer.put_blob, namespace, key, value)

    # -- reading -------------------------------------------------------------------

    @property
    def reads(self) -> SqliteReads:
        """The read models (:mod:`.read_models`) on this store's reader connection."""
        return SqliteReads(self.fetch)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only query for reports (audit, dashboard)."""
        async with self.db.execute(sql, params) as cur:
            return [tuple(r) for r in await cur.fetchall()]


def _create_private(path: Path) -> None:
    """Create the directory and an empty database file readable by its owner only.

    SQLite gives its ``-wal`` and ``-shm`` files the database file's mode, so
    they are private too.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)
    except PermissionError:
        raise StoreError(f"permission denied: cannot write the database {path}") from None
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise StoreError(f"permission denied: {path} is on a read-only filesystem") from None
        raise StoreError(f"cannot open database {path}: {exc.strerror or exc}") from None


async def _connect(target: str, path: Path, *, uri: bool = False) -> aiosqlite.Connection:
    try:
        return await aiosqlite.connect(target, isolation_level=None, uri=uri)
    except sqlite3.Error as exc:
        raise _open_error(path, exc) from None


def _open_error(path: Path, exc: sqlite3.Error) -> StoreError:
    if not os.access(path.parent, os.W_OK) or not os.access(path, os.R_OK):
        return StoreError(f"permission denied: cannot open the database {path}")
    return StoreError(f"cannot open database {path}: {exc}")


async def _holder_of(db: aiosqlite.Connection) -> LeaseHolder | None:
    async with db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'lease'"
    ) as cur:
        if await cur.fetchone() is None:
            return None
    async with db.execute(
        "SELECT epoch, pid, host, since FROM lease WHERE name = ?", (LEASE_NAME,)
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else LeaseHolder(int(row[0]), int(row[1]), row[2], row[3])

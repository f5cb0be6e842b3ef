"""One connection for the side tables, on either backend: the bot's SQLite file or its PostgreSQL.

The side tables (the circuit breaker's and trading states' logs, rebalancing's
log, the P&L reporter's tables, the dry-run broker's ledger) are written
beside a running engine by other processes and services, each change in a
short transaction on a connection of its own. On PostgreSQL they are tables
of the same database, so a standby on another machine sees exactly what the
leader wrote. Their modules write each statement once, with ``?``
placeholders; this module runs them on either driver:

* :class:`SideDb`: an async connection (aiosqlite or psycopg), with
  :meth:`SideDb.transaction` (SQLite: ``BEGIN IMMEDIATE``, which serialises
  writers; PostgreSQL: a transaction that first takes an advisory lock named
  after what it writes, so writers of one table queue exactly as they do on
  SQLite);
* :func:`.side_sync.sync_transaction`: a short synchronous connection for one
  transaction (a CLI command, start-up before the event loop runs).

``where`` is what :attr:`~st0x_liquidity.config.AppConfig.database` gives:
the SQLite file's path, or the ``postgresql://`` URL (with its password, which
no message here ever shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiosqlite

from ..errors import StoreError
from .sqlite_reads import SqliteReads

if TYPE_CHECKING:
    import psycopg

    from . import reconnect
    from .postgres_reads import PostgresReads
    from .postgres_writer import pg
else:
    try:  # the [postgres] extra; a SQLite-only install has no psycopg
        import psycopg

        from . import reconnect
        from .postgres_reads import PostgresReads
        from .postgres_writer import pg
    except ImportError:
        psycopg = None

Where = Path | str
"""A SQLite file's path or a ``postgresql://`` URL."""

BUSY_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT = 5
"""Seconds a PostgreSQL connection may take to open."""
SILENCE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 4000,
}
"""A server gone silent (a cut network) fails a side connection within seconds, rather
than leaving ``/health``, the page or a start-up read waiting for ever."""
ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,) + (
    (psycopg.Error,) if psycopg is not None else ()
)
"""What either driver raises for a database problem."""
INTEGRITY: tuple[type[Exception], ...] = (sqlite3.IntegrityError,) + (
    (psycopg.IntegrityError,) if psycopg is not None else ()
)
_SCHEMES = ("postgresql://", "postgres://")


def require_driver() -> None:
    """A PostgreSQL URL on an install without the driver: one clear line."""
    if psycopg is None:
        raise StoreError(
            "a postgresql:// database needs the PostgreSQL driver: "
            "pip install 'st0x-liquidity[postgres]'"
        )


def is_postgres(where: Where) -> bool:
    return isinstance(where, str) and where.strip().lower().startswith(_SCHEMES)


def describe(where: Where) -> str:
    """``where`` for a message: a path, or the URL without its password."""
    from .postgres import redact

    return redact(str(where)) if is_postgres(where) else str(where)


def explain(where: Where, exc: BaseException) -> str:
    """The first line of a driver's error, with any password masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if is_postgres(where):
        password = urlsplit(str(where)).password
        if password:
            text = text.replace(password, "***")
    return text


def _pg_options(read_only: bool) -> str:
    return "-c default_transaction_read_only=on" if read_only else ""


def lock_key(name: str) -> int:
    """A stable advisory-lock key for ``name`` (a signed 64-bit integer)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class SideDb:
    """One async connection with ``?`` placeholders and explicit transactions."""

    def __init__(
        self,
        conn: aiosqlite.Connection | psycopg.AsyncConnection[Any],
        where: Where,
        *,
        owned: bool = True,
    ) -> None:
        self._conn: aiosqlite.Connection | psycopg.AsyncConnection[Any] | None = conn
        self.where = where
        self.postgres = not isinstance(conn, aiosqlite.Connection)
        self._owned = owned
        self._source: Callable[[], aiosqlite.Connection | psycopg.AsyncConnection[Any]] | None = (
            None
        )
        self._reopen: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]] | None = None
        self._read_only = False
        self._in_transaction = False
        self.event_position = "position" if self.postgres else "rowid"
        """The column that orders the core event log (SQLite's rowid)."""
        self.reads: SqliteReads = (PostgresReads if self.postgres else SqliteReads)(self.fetch)
        """The read models (:mod:`.read_models`) on this connection."""

    @classmethod
    async def open(cls, where: Where, *, read_only: bool = False) -> SideDb:
        """A connection of its own to the database at ``where`` (which must exist)."""
        if is_postgres(where):
            require_driver()
            try:
                conn = await psycopg.AsyncConnection.connect(
                    str(where),
                    autocommit=True,
                    application_name="st0x-liquidity",
                    options=_pg_options(read_only),
                    connect_timeout=CONNECT_TIMEOUT,
                    **SILENCE,
                )
            except psycopg.Error as exc:
                raise StoreError(
                    f"{describe(where)} cannot be opened: {explain(where, exc)}"
                ) from None
            side = cls(conn, where)
            side._read_only = read_only
            return side
        path = Path(where)
        if not path.exists():  # noqa: ASYNC240 (one stat, before connecting)
            raise StoreError(f"no database at {path} (has `run` been started?)")
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None
        try:
            await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if read_only:
                await db.execute("PRAGMA query_only=ON")
            else:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=FULL")
        except BaseException as exc:  # cancelled too: an unclosed connection's thread never ends
            await db.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot read database {path}: {exc}") from None
            raise
        return cls(db, path)

    @classmethod
    async def open_file(cls, path: Path, schema: str) -> SideDb:
        """A SQLite file of its own (the dry-run ledger's), created with ``schema``."""
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: {exc}") from None
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(schema)
        except BaseException as exc:  # cancelled too: an unclosed connection's thread never ends
            await db.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{path}: {exc}") from None
            raise
        return cls(db, path)

    @classmethod
    def of(
        cls,
        where: Where,
        conn: Callable[[], aiosqlite.Connection | psycopg.AsyncConnection[Any]],
        reopen: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]] | None = None,
    ) -> SideDb:
        """On a connection someone else owns and may replace (a store's reader):
        ``conn()`` gives the current one, ``reopen()`` has its owner open a new one
        after the server dropped it."""
        side = cls(conn(), where, owned=False)
        side._source, side._reopen = conn, reopen
        return side

    @property
    def conn(self) -> aiosqlite.Connection | psycopg.AsyncConnection[Any]:
        if self._source is not None and self._conn is not None:
            self._conn = self._source()
        if self._conn is None:
            raise StoreError("connection is closed")
        return self._conn

    async def _live(self) -> aiosqlite.Connection | psycopg.AsyncConnection[Any]:
        """The connection; a PostgreSQL one the server dropped (a restart) is opened again."""
        conn = self.conn
        if (
            not isinstance(conn, aiosqlite.Connection)
            and not self._in_transaction
            and reconnect.broken(conn)
        ):
            if self._reopen is not None:
                self._conn = conn = await self._reopen()
            elif self._owned:
                fresh = (await SideDb.open(self.where, read_only=self._read_only)).conn
                with contextlib.suppress(*ERRORS, OSError):
                    await conn.close()
                self._conn = conn = fresh
        return conn

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query; outside a transaction, once more on a new connection if the
        server dropped this one (reads are safe to repeat)."""
        for last in (False, True):
            conn = await self._live()
            if isinstance(conn, aiosqlite.Connection):
                async with conn.execute(sql, params) as scur:
                    return [tuple(r) for r in await scur.fetchall()]
            try:
                return await self._query(conn, sql, params)
            except psycopg.Error:
                if last or self._in_transaction or not reconnect.broken(conn):
                    raise
        raise AssertionError("unreachable")

    async def _query(
        self, conn: psycopg.AsyncConnection[Any], sql: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """One PostgreSQL query; cancelled, a connection of our own is shut at once.

        psycopg answers a cancellation by asking the server to cancel the query
        and waiting for it: up to about 10 s when the server is unreachable (a
        leader stepping down in a partition would wait that long for its
        dashboard). A connection this object owns is not worth it: the next use
        opens a new one.
        """

        async def run() -> list[tuple[Any, ...]]:
            cur = await conn.execute(pg(sql), params)
            return [] if cur.description is None else [tuple(r) for r in await cur.fetchall()]

        if not self._owned:
            return await run()
        query = asyncio.ensure_future(run())
        try:
            return await asyncio.shield(query)
        except asyncio.CancelledError:
            reconnect.shut(conn)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await query
            raise

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; how many rows it changed."""
        conn = await self._live()
        if not isinstance(conn, aiosqlite.Connection):
            cur = await conn.execute(pg(sql), params)
            return cur.rowcount
        async with conn.execute(sql, params) as scur:
            return scur.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        conn = await self._live()
        if not isinstance(conn, aiosqlite.Connection):
            async with conn.cursor() as cur:
                await cur.executemany(pg(sql), rows)
            return
        await conn.executemany(sql, rows)

    @contextlib.asynccontextmanager
    async def transaction(self, lock: str) -> AsyncIterator[None]:
        """One transaction, serialised with every other writer that names the same ``lock``."""
        conn = await self._live()
        if not isinstance(conn, aiosqlite.Connection):
            self._in_transaction = True
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(lock),))
                    yield
            finally:
                self._in_transaction = False
            return
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._owned:
            with contextlib.suppress(*ERRORS):
                await conn.close()

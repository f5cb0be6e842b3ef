"""PostgreSQL event store: the same log, views, migrations and lease as the SQLite one.

The shape is :class:`~.sqlite.SqliteStore`'s: one writer connection (sync
psycopg, each commit one transaction in a worker thread, the group commit
of :class:`~.base.EventStore`), and a reader connection of its own
(async psycopg, autocommit: committed data only).

The lease is the same ``lease`` row and epoch, fenced the same way (every
engine transaction locks the row and compares the epoch), but PostgreSQL
has no ``flock``: the holder's lease **expires** (``expires_at``, on the
server's clock) unless renewed, every ``lease_ttl / 3`` seconds, on a third
connection. A second ``run`` while the lease is live is refused
(:class:`LeaseHeldError`); once it lapses (the holder was killed, frozen
or cut off) the next one takes it with ``epoch + 1``, and the old holder's
next write or broker call fails. A standby waits on exactly that row
(``standby=True``: :meth:`PostgresStore.open` does not refuse, and
:meth:`PostgresStore.try_take_lease` asks again).

Self-fencing: the holder notes, on its own monotonic clock, when each
renewal the server confirmed was *sent*. The server's ``expires_at`` is at
least ``lease_ttl`` past that moment, so a holder that refuses broker calls
once ``lease_ttl - fence_margin`` has passed since then stops before anyone
else can hold the lease, whatever happened to the database or to its
connection (:meth:`PostgresStore.verify_lease` needs no round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ..domain.events import StoredEvent
from ..errors import StoreError
from . import postgres_writer as writer
from . import reconnect
from .base import EventStore, uninterrupted
from .lease import LEASE_NAME, LeaseHeldError, LeaseHolder, LeaseLostError
from .postgres_reads import PostgresReads
from .postgres_writer import KEEPALIVES, pg
from .schema import LATEST_VERSION, VIEWS_STALE
from .writes import Encoded, Key

log = logging.getLogger(__name__)

_T = TypeVar("_T")
LEASE_TTL = 6.0
"""Seconds a lease lives without renewal: how long a killed holder blocks the next start."""
VERIFY_MARGIN = 2.0
"""A broker call needs this many seconds of lease left (the call itself takes time)."""
FENCE_POLL = 0.05
"""Seconds between looks while a broker call waits for a late renewal."""


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


class PostgresStore(EventStore):
    """The PostgreSQL :class:`~st0x_liquidity.protocols.PositionStore`."""

    _EVENT_POSITION = "position"

    def __init__(
        self,
        url: str,
        *,
        lease: bool = True,
        read_only: bool = False,
        lease_ttl: float = LEASE_TTL,
        renew_interval: float | None = None,
        fence_margin: float | None = None,
        standby: bool = False,
    ) -> None:
        super().__init__()
        self.url = url
        self.name = redact(url)
        self._password = urlsplit(url).password
        self._read_only = read_only
        self._wants_lease = lease and not read_only
        self._standby = standby
        self._ttl = lease_ttl
        self._renew_every = renew_interval if renew_interval is not None else lease_ttl / 3
        self._margin = fence_margin if fence_margin is not None else min(VERIFY_MARGIN, lease_ttl / 4)
        self._writer: psycopg.Connection[Any] | None = None
        self._db: psycopg.AsyncConnection[Any] | None = None
        self._lease_db: psycopg.AsyncConnection[Any] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._lost: str | None = None
        self._sent = self._acked = 0.0
        """Monotonic times the last renewal the server confirmed was sent, and confirmed."""
        self.holder: LeaseHolder | None = None
        """Who holds the lease while this store waits as a standby (None: unknown)."""
        self.lease_lost = asyncio.Event()
        """Set once this holder has lost its lease (taken by another, or not renewed in time)."""
        self._closing = False
        self.outage = reconnect.Outage()
        """Whether the database answers (``/health``'s store check, ``st0x_store_up``)."""

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        try:
            if self._read_only:
                await self._open_reader()
            else:
                await self._open_writer()
            self.database_id = await self._meta("database_id") or ""
        except psycopg.Error as exc:
            await self._close_connections()
            raise StoreError(self._error("is not a usable st0x database", exc)) from None
        except BaseException:
            await self._close_connections()
            raise

    def _error(self, what: str, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self._password:
            text = text.replace(self._password, "***")
        return f"{self.name} {what}: {text}"

    async def _connect(self, *, read_only: bool = False) -> psycopg.AsyncConnection[Any]:
        options = "-c default_transaction_read_only=on" if read_only else ""
        try:
            return await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                application_name="st0x-liquidity",
                options=options,
                connect_timeout=10,
                **KEEPALIVES,
            )
        except psycopg.Error as exc:
            raise StoreError(self._error("cannot be opened", exc)) from None

    async def _open_reader(self) -> None:
        self._db = await self._connect(read_only=True)
        version = await self.schema_version()
        if version == 0:
            raise StoreError(f"no st0x database at {self.name} (has `run` been started?)")
        if version > LATEST_VERSION:
            raise StoreError(writer.too_new(self.name, version))
        if version < LATEST_VERSION:
            raise StoreError(
                f"{self.name} has schema version {version}, older than this program's "
                f"({LATEST_VERSION}); start `run` or `rebuild-views` once to upgrade it"
            )

    async def _open_writer(self) -> None:
        try:
            # A standby may wait on this holder: a transaction it froze in must end
            # (long admin transactions, rebuild-views, are not cut short).
            idle = max(2.0, self._ttl / 2) if self._standby else None
            self._writer = await asyncio.to_thread(
                writer.connect, self.url, idle_in_transaction=idle
            )
        except psycopg.Error as exc:
            raise StoreError(self._error("cannot be opened", exc)) from None
        await self._in_writer(writer.migrate, self.name)
        self._db = await self._connect()
        if not self._wants_lease:
            return
        if not await self.try_take_lease() and not self._standby:
            raise LeaseHeldError(self.name, self.holder)

    async def try_take_lease(self) -> bool:
        """Take the lease if nobody holds a live one (a new epoch); True if held now.

        A standby calls it every ``[ha] standby_poll`` seconds; :attr:`holder`
        says who holds it meanwhile.
        """
        if self._epoch is not None:
            return True
        sent = time.monotonic()
        try:
            me, holder = await self._in_writer(writer.take_lease, self._ttl)
        except psycopg.Error as exc:
            raise StoreError(self._error("cannot take the lease", exc)) from None
        if me is None:
            self.holder = holder
            return False
        self._epoch, self.holder = me.epoch, me
        self._sent, self._acked = sent, time.monotonic()
        self._lost = None
        self.lease_lost.clear()
        try:
            self._lease_db = await self._connect()
        except StoreError:
            self._lease_db = None  # the renewer connects again
        self._renewer = asyncio.create_task(self._renew_loop(me.epoch), name="store-lease")
        log.debug("lease taken on %s (epoch %d)", self.name, me.epoch)
        stale = await self._meta(VIEWS_STALE)
        if stale is not None:
            log.warning("schema %s changed the views: rebuilding them from the events", stale)
            log.warning("views rebuilt from %d events", await self.rebuild_views())
        return True

    async def _renew_loop(self, epoch: int) -> None:
        """Keep the lease live; a renewal that finds another epoch, or none confirmed
        for ``lease_ttl``, marks it lost."""
        while True:
            await asyncio.sleep(max(0.0, self._renew_every - (time.monotonic() - self._sent)))
            quiet = time.monotonic() - self._acked
            if quiet > self._ttl:
                self._lose(f"it was not renewed in time (last confirmed {quiet:.1f}s ago)")
                return
            sent = time.monotonic()
            try:
                rows = await self._renew_once(epoch, within=max(self._renew_every, 0.1))
            except (psycopg.Error, StoreError, TimeoutError) as exc:
                # Broker calls stop on their own (verify_lease) once it is late.
                text = self._error("lease renewal failed", exc) if str(exc) else "timed out"
                log.warning("%s; retrying", text)
                await self._drop_lease_db()
                await asyncio.sleep(min(self._renew_every, 0.5))
                continue
            if rows != 1:
                self._lose("another process took it")
                return
            self._sent, self._acked = max(self._sent, sent), time.monotonic()

    async def _renew_once(self, epoch: int, *, within: float) -> int:
        """One renewal, given up after ``within`` seconds (a connection that went silent is shut)."""
        if self._lease_db is None:
            self._lease_db = await asyncio.wait_for(self._connect(), within)
        db = self._lease_db
        update = asyncio.ensure_future(
            db.execute(
                "UPDATE lease SET renewed_at = %s, "
                "expires_at = now() + make_interval(secs => %s) "
                "WHERE name = %s AND epoch = %s",
                (datetime.now(UTC).isoformat(timespec="milliseconds"), self._ttl, LEASE_NAME, epoch),
            )
        )
        done, _ = await asyncio.wait({update}, timeout=within)
        if not done:
            # Not cancelled: psycopg would wait for the server to confirm the cancel.
            # Shutting the socket ends the wait with an error instead.
            reconnect.shut(db)
            with contextlib.suppress(Exception):
                await update
            raise TimeoutError("lease renewal timed out")
        return int(update.result().rowcount)

    async def _drop_lease_db(self) -> None:
        db, self._lease_db = self._lease_db, None
        if db is not None:
            reconnect.shut(db)
            with contextlib.suppress(psycopg.Error, OSError):
                await db.close()

    def _lose(self, why: str) -> None:
        """The lease is gone: no broker call and no write from this store again.

        The connections are shut, so a write hanging on a silent connection ends
        (with an error: the server rolls it back) instead of keeping the step-down
        waiting."""
        self._mark_lost(f"lost the lease on {self.name}: {why}; stopping")

    def _mark_lost(self, message: str) -> None:
        if self._lost is not None:
            return
        self._lost = message
        log.error("%s", self._lost)
        for conn in (self._writer, self._db, self._lease_db):
            if conn is not None:
                reconnect.shut(conn)
        self.lease_lost.set()

    @property
    def reachable(self) -> bool:
        """False once a connection to the database broke (the server, or the way to it, went)."""
        return not any(
            conn is not None and (conn.broken or conn.closed) for conn in (self._writer, self._db)
        )

    @property
    def lost(self) -> str | None:
        """Why this store lost its lease (None while it holds it or never held it)."""
        return self._lost

    async def _in_writer(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(writer, *args)`` in a worker thread, to its end even if the caller is
        cancelled (a thread cannot be stopped mid-transaction)."""
        if self._writer is None:
            raise StoreError("store is not open for writing")
        thread = asyncio.ensure_future(asyncio.to_thread(fn, self._writer, *args))
        return await uninterrupted(thread)

    async def _meta(self, key: str) -> str | None:
        rows = await self.fetch("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])

    async def close(self) -> None:
        """Commit whatever was submitted, then let the lease go and close the connections.

        A commit still waiting for an unreachable database gives up now: its events
        are lost as in a crash, and recovered the same way (the source's cursor did
        not move past them; intents are looked up at the broker)."""
        self._closing = True
        await self.flush()
        async with self._write_lock:  # no writer call is still running in a thread
            await self._close_connections()

    async def _close_connections(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._epoch is not None and self._lease_db is not None and self._lost is None:
            # Let the lease go at once: a standby takes over without waiting for it to lapse.
            # Not wait_for: psycopg would wait for the server to confirm the cancel.
            db = self._lease_db
            release = asyncio.ensure_future(
                db.execute(
                    "UPDATE lease SET expires_at = now() WHERE name = %s AND epoch = %s",
                    (LEASE_NAME, self._epoch),
                )
            )
            done, _ = await asyncio.wait({release}, timeout=self._renew_every)
            if not done:
                reconnect.shut(db)
            with contextlib.suppress(psycopg.Error, OSError):
                await release
        for conn in (self._lease_db, self._db):
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
        if self._writer is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                self._writer.close()
        self._writer = self._db = self._lease_db = None
        self._epoch = None

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def db(self) -> psycopg.AsyncConnection[Any]:
        """The read connection (committed data only)."""
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def schema_version(self) -> int:
        rows = await self.fetch("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not rows or not rows[0][0]:
            return 0
        rows = await self.fetch("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(rows[0][0]) if rows else 0

    # -- the lease -------------------------------------------------------------------

    async def verify_lease(self) -> None:
        """Return once a broker call is safe; raise :class:`LeaseLostError` if it never will be.

        Safe means: the last renewal the server confirmed was sent less than
        ``lease_ttl - fence_margin`` seconds ago by this process's monotonic
        clock (no round trip: the check holds when the database or the way to
        it is gone). A late renewal makes the call wait for the next one; once
        none was confirmed for ``lease_ttl`` the lease is lost.
        """
        if self._epoch is None:
            raise StoreError("this store does not hold the database's lease")
        while True:
            if self._lost is not None:
                raise LeaseLostError(self._lost)
            now = time.monotonic()
            if now - self._sent <= self._ttl - self._margin:
                return
            if now - self._acked > self._ttl:
                self._lose(f"it was not renewed in time (last confirmed {now - self._acked:.1f}s ago)")
                continue
            await asyncio.sleep(FENCE_POLL)

    def _fence(self) -> int:
        if self._lost is not None:
            raise LeaseLostError(self._lost)
        return super()._fence()

    # -- writing -------------------------------------------------------------------

    def _writable(self) -> bool:
        return self._writer is not None

    async def _write(
        self, epoch: int, entries: list[Encoded], known: dict[Key, int]
    ) -> tuple[list[list[StoredEvent]], dict[Key, int]]:
        """One commit; while the database is unreachable, wait for it and try again.

        A connection lost during the transaction leaves its outcome unknown: the
        ``COMMIT`` may have reached the server. Each attempt records a token of
        its own (:func:`~.postgres_writer.landed`), so once the database answers
        again the store asks whether it landed, and returns the events as stored
        rather than writing them twice. The epoch fence failing means another
        holder took the database: this store is done.
        """
        token = uuid.uuid4().hex
        while True:
            try:
                return await self._in_writer(writer.write_events, epoch, entries, known, token)
            except LeaseLostError as exc:  # the epoch fence: another holder took the database
                self._mark_lost(str(exc))
                raise
            except psycopg.Error as exc:
                if self._lost is not None:
                    raise LeaseLostError(self._lost) from None
                if self._writer is not None and not reconnect.broken(self._writer):
                    raise StoreError(self._error("could not commit", exc)) from None
                dropped = self._error("dropped the writer's connection", exc)
            done = await self._writer_again(
                lambda: self._in_writer(writer.landed, entries, token), dropped
            )
            if done is not None:
                log.warning("%s: the commit had landed before the connection dropped", self.name)
                return done

    async def _writer_again(self, ask: Callable[[], Awaitable[_T]], dropped: str) -> _T:
        """Reconnect the writer, then ``ask()``: at once, then with capped backoff for as long
        as it takes (the database is then unreachable: an outage)."""
        attempt = 0
        while True:
            if attempt:
                await self.outage.pause(attempt)
            attempt += 1
            if self._lost is not None:
                raise LeaseLostError(self._lost)
            if self._closing:
                raise StoreError(self._error("is unreachable", Exception(self.outage.detail)))
            try:
                if self._writer is None or reconnect.broken(self._writer):
                    idle = max(2.0, self._ttl / 2) if self._standby else None
                    fresh = await asyncio.to_thread(
                        writer.connect, self.url, idle_in_transaction=idle
                    )
                    old, self._writer = self._writer, fresh
                    reconnect.discard(old)
                answer = await ask()
            except psycopg.Error as exc:
                self.outage.down(self._error("is unreachable", exc))
                continue
            self.outage.up(self.name, dropped)
            return answer

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
    def reads(self) -> PostgresReads:
        """The read models (:mod:`.read_models`) on this store's reader connection."""
        return PostgresReads(self.fetch)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only query for reports (audit, dashboard); ``?`` placeholders.

        The lease holder (the engine) waits for an unreachable database and asks
        again on a new connection; any other store (a command, the reporter) tries
        one new connection at once and otherwise reports the error.
        """
        attempt = 0
        dropped: str | None = None
        while True:
            try:
                cur = await self.db.execute(pg(sql), params)
                rows = [] if cur.description is None else [tuple(r) for r in await cur.fetchall()]
            except psycopg.Error as exc:
                if self._lost is not None:  # its connections were shut: stop, do not retry
                    raise LeaseLostError(self._lost) from None
                if not reconnect.broken(self.db):
                    raise  # the query's own error (a missing table)
                if self._epoch is None:
                    if attempt:  # a store without the lease (a command, the reporter):
                        raise  # one new connection at once, and no waiting
                    attempt = 1
                    self._db = await self._replaced(self.db)
                    continue
                dropped = self._error("dropped the reader's connection", exc)
                attempt += 1
                await self._reader_again(attempt)
                continue
            if dropped is not None:
                self.outage.up(self.name, dropped)
            return rows

    async def _reader_again(self, attempt: int) -> None:
        """One try at a new reader connection: at once, then after the backoff's pause."""
        if attempt > 1:
            await self.outage.pause(attempt - 1)
        if self._lost is not None:
            raise LeaseLostError(self._lost)
        if self._closing:
            raise StoreError(self._error("is unreachable", Exception(self.outage.detail)))
        try:
            fresh = await self._connect()
        except StoreError as exc:
            self.outage.down(str(exc))
            return
        old, self._db = self._db, fresh
        if old is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await old.close()

    async def reopen_reader(self) -> psycopg.AsyncConnection[Any]:
        """A new reader connection in place of one the server dropped (the reporter's
        tables share it)."""
        self._db = await self._replaced(self.db)
        return self._db

    async def _replaced(self, old: psycopg.AsyncConnection[Any]) -> psycopg.AsyncConnection[Any]:
        fresh = await self._connect(read_only=self._read_only)
        with contextlib.suppress(psycopg.Error, OSError):
            await old.close()
        return fresh

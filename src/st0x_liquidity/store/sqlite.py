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
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..domain.events import EVENT_VERSION, NewEvent, StoredEvent
from ..domain.fills import Direction, Fill, TradeId
from ..domain.symbols import Symbol
from ..errors import StoreError
from ..protocols import BookSnapshot, Cursor, HedgeOrderRecord, OpenLot, PositionRecord
from .codec import event_from_json, event_to_json, metadata_to_json
from .lease import LEASE_NAME, FileLock, LeaseHeldError, LeaseHolder, LeaseLostError, this_holder
from .projection import Batch
from .schema import LATEST_VERSION, MIGRATIONS, VIEW_TABLES, VIEWS_STALE
from .sqlite_reads import SqliteReads
from .writes import apply, dec_add

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "submitted", "partially_filled")
BUSY_TIMEOUT_MS = 10_000
_T = TypeVar("_T")
_Entry = tuple[list[NewEvent], "asyncio.Future[list[StoredEvent]]"]


def _now() -> datetime:
    return datetime.now(UTC)


class SqliteStore:
    """The embedded :class:`~st0x_liquidity.protocols.PositionStore`."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        lease: bool = True,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._read_only = read_only
        self._wants_lease = lease and not read_only
        self._lock = FileLock(self.path.with_name(self.path.name + "-lease"))
        self._epoch: int | None = None
        self._writer: aiosqlite.Connection | None = None
        self._db: aiosqlite.Connection | None = None
        self._queue: list[_Entry] = []
        self._committer: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._sequences: dict[tuple[str, str], int] = {}
        self.database_id = ""

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        if self._synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"unknown sqlite synchronous mode {self._synchronous!r}")
        try:
            if self._read_only:
                await self._open_reader()
            else:
                await self._open_writer()
            await self._read_meta()
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
        await self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        version = await self.schema_version()
        if version > LATEST_VERSION:
            raise StoreError(_too_new(self.path, version))
        if version < LATEST_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, older than this program's "
                f"({LATEST_VERSION}); start `run` or `rebuild-views` once to upgrade it"
            )

    async def _open_writer(self) -> None:
        _create_private(self.path)
        if self._wants_lease and not self._lock.try_acquire(this_holder(0)):
            raise LeaseHeldError(str(self.path), self._lock.holder() or await self._holder())
        writer = self._writer = await _connect(str(self.path), self.path)
        await writer.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await _enter_wal(writer)
        await writer.execute(f"PRAGMA synchronous={self._synchronous}")
        await writer.execute("PRAGMA foreign_keys=ON")
        await writer.create_function("dec_add", 2, dec_add, deterministic=True)
        await self._migrate(writer)
        self._db = await _connect(str(self.path), self.path)
        await self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if self._wants_lease:
            await self._take_epoch(writer)
            stale = await self._meta(VIEWS_STALE)
            if stale is not None:
                log.warning("schema %s changed the views: rebuilding them from the events", stale)
                log.warning("views rebuilt from %d events", await self.rebuild_views())

    async def _read_meta(self) -> None:
        self.database_id = await self._meta("database_id") or ""

    async def _meta(self, key: str) -> str | None:
        async with self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def _holder(self) -> LeaseHolder | None:
        """Who holds the lease, as the database says (best effort: it names them)."""
        try:
            db = await _connect(f"file:{self.path}?mode=ro", self.path, uri=True)
        except StoreError:
            return None
        try:
            return await _read_holder(db)
        except sqlite3.Error:
            return None
        finally:
            await db.close()

    async def _take_epoch(self, writer: aiosqlite.Connection) -> None:
        """A new epoch for this holder: from now on, the previous holder's writes fail."""
        await writer.execute("BEGIN IMMEDIATE")
        try:
            previous = await _read_holder(writer)
            me = this_holder((previous.epoch if previous else 0) + 1)
            await writer.execute(
                "INSERT INTO lease (name, epoch, pid, host, since, renewed_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "epoch = excluded.epoch, pid = excluded.pid, host = excluded.host, "
                "since = excluded.since, renewed_at = excluded.renewed_at",
                (LEASE_NAME, me.epoch, me.pid, me.host, me.since, me.since),
            )
            await writer.execute("COMMIT")
        except BaseException:
            await _rollback(writer)
            raise
        self._epoch = me.epoch
        self._lock.record(me)
        log.debug("lease taken on %s (epoch %d)", self.path, me.epoch)

    async def close(self) -> None:
        """Commit whatever was submitted, then close the connections and let the lease go."""
        await self.flush()
        await self._close_connections()

    async def _close_connections(self) -> None:
        for db in (self._writer, self._db):
            if db is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await db.close()
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

    @property
    def epoch(self) -> int | None:
        """This holder's lease epoch; None without the lease."""
        return self._epoch

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        """Apply missing migrations, each in its own write transaction.

        The version is read inside the transaction, so two processes opening a
        new database at once (the bot and the reporter) cannot both apply one.
        """
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for version, description, sql in MIGRATIONS:
            await db.execute("BEGIN IMMEDIATE")
            try:
                current = await _schema_version(db)
                if current > LATEST_VERSION:
                    raise StoreError(_too_new(self.path, current))
                if version > current:
                    for statement in _split_sql(sql):
                        await db.execute(statement)
                    if version == 1:
                        await db.execute(
                            "INSERT INTO meta (key, value) VALUES "
                            "('database_id', ?), ('created_at', ?)",
                            (uuid.uuid4().hex[:12], _now().isoformat()),
                        )
                    await db.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (version, description, _now().isoformat()),
                    )
                await db.execute("COMMIT")
            except BaseException:
                await _rollback(db)
                raise

    async def schema_version(self) -> int:
        return await _schema_version(self.db)

    # -- the lease -------------------------------------------------------------------

    async def verify_lease(self) -> None:
        """Raise :class:`LeaseLostError` unless this store still holds the lease.

        The engine asks before every broker call: a holder whose epoch moved
        on must not place anything.
        """
        if self._epoch is None:
            raise StoreError("this store does not hold the database's lease")
        holder = await _read_holder(self.db)
        if holder is None or holder.epoch != self._epoch:
            raise self._lost(holder)

    def _lost(self, holder: LeaseHolder | None) -> LeaseLostError:
        who = holder.describe() if holder is not None else "nobody"
        return LeaseLostError(
            f"lost the lease on {self.path}: it is now held by {who} "
            f"(epoch {holder.epoch if holder else '?'}, ours was {self._epoch}); stopping"
        )

    async def _begin(self, *, fenced: bool = True) -> aiosqlite.Connection:
        """Start a write transaction; ``fenced``: one of the engine's, checked against the lease."""
        writer = self._writer
        if writer is None:
            raise StoreError("store is not open for writing")
        if fenced and self._epoch is None:
            raise StoreError("only the holder of the database's lease writes the event log")
        await writer.execute("BEGIN IMMEDIATE")
        if not fenced:
            return writer
        try:
            holder = await _read_holder(writer)
            if holder is None or holder.epoch != self._epoch:
                raise self._lost(holder)
        except BaseException:
            await _rollback(writer)
            raise
        return writer

    # -- writing -------------------------------------------------------------------

    def submit(self, events: Sequence[NewEvent]) -> asyncio.Future[list[StoredEvent]]:
        """Queue ``events`` for the next commit, in call order; the future ends with it."""
        future: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        if not events:
            future.set_result([])
            return future
        if self._writer is None:
            raise StoreError("store is not open for writing")
        self._queue.append((list(events), future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_loop(), name="store-commit")
        return future

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Commit ``events`` and their view changes atomically; return them as stored.

        A caller cancelled while waiting still has its events committed: the
        cancellation is raised once the transaction has ended, as if the
        process had stopped right after the commit.
        """
        return await _uninterrupted(self.submit(events))

    async def _commit_loop(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue, []
                async with self._write_lock:
                    await self._commit(group)
        finally:
            self._committer = None

    async def _commit(self, group: list[_Entry]) -> None:
        """One transaction for ``group``; each caller learns its outcome."""
        encoded = []
        for events, future in group:
            try:
                rows = [
                    (new, event_to_json(new.event), metadata_to_json(new.metadata))
                    for new in events
                ]
            except Exception as exc:  # a bad event fails its own caller only
                future.set_exception(StoreError(f"cannot encode events: {exc}"))
                continue
            encoded.append((rows, future))
        if not encoded:
            return
        try:
            results = await self._write_events([rows for rows, _ in encoded])
        except BaseException as exc:
            self._sequences.clear()  # re-read after a rollback
            error = exc
            if not isinstance(exc, StoreError):
                error = StoreError(f"could not commit events: {exc!r}")
            for _, future in encoded:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), stored in zip(encoded, results, strict=True):
            if not future.done():
                future.set_result(stored)

    async def _write_events(
        self, entries: list[list[tuple[NewEvent, str, str]]]
    ) -> list[list[StoredEvent]]:
        writer = await self._begin()
        try:
            now = _now()  # after BEGIN: the commit's own time, never before its events arrived
            when = now.isoformat()
            sequences: dict[tuple[str, str], int] = {}
            batch = Batch()
            rows = []
            results = []
            for entry in entries:
                stored_entry = []
                for new, payload, metadata in entry:
                    key = (new.aggregate_type, new.aggregate_id)
                    if key not in sequences:
                        sequences[key] = await self._last_sequence(writer, key)
                    sequences[key] += 1
                    stored = StoredEvent(*key, sequences[key], new.event, new.metadata, now)
                    rows.append(
                        (*key, sequences[key], new.event.TYPE, EVENT_VERSION, payload, metadata, when)
                    )
                    batch.add(stored)
                    stored_entry.append(stored)
                results.append(stored_entry)
            await writer.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            await apply(writer, batch)
            await writer.execute("COMMIT")
        except BaseException:
            await _rollback(writer)
            raise
        self._sequences.update(sequences)
        return results

    async def _last_sequence(self, db: aiosqlite.Connection, key: tuple[str, str]) -> int:
        known = self._sequences.get(key)
        if known is not None:
            return known
        async with db.execute(
            "SELECT COALESCE(MAX(sequence), 0) FROM events "
            "WHERE aggregate_type = ? AND aggregate_id = ?",
            key,
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def rebuild_views(self) -> int:
        """Empty every view and refill it by replaying all events; returns the event count."""
        await self.flush()
        async with self._write_lock:
            writer = await self._begin()
            try:
                for table in VIEW_TABLES:
                    await writer.execute(f"DELETE FROM {table}")
                count = last = 0
                while True:
                    async with writer.execute(_EVENTS_AFTER, (last, 5000)) as cur:
                        rows = list(await cur.fetchall())
                    if not rows:
                        break
                    batch = Batch()
                    for row in rows:
                        batch.add(_stored_from_row(tuple(row))[1])
                    await apply(writer, batch)
                    last = int(rows[-1][0])
                    count += len(rows)
                await writer.execute("DELETE FROM meta WHERE key = ?", (VIEWS_STALE,))
                await writer.execute("COMMIT")
            except BaseException:
                await _rollback(writer)
                raise
        return count

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (or failed)."""
        while self._committer is not None:
            await asyncio.wait({self._committer})

    async def put_blob(self, namespace: str, key: str, value: bytes) -> None:
        """Plugin state is not the engine's: ``schwab auth`` writes it beside a running bot."""
        async with self._write_lock:
            writer = await self._begin(fenced=False)
            try:
                await writer.execute(
                    "INSERT INTO plugin_blobs VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) "
                    "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    (namespace, key, value, _now().isoformat()),
                )
                await writer.execute("COMMIT")
            except BaseException:
                await _rollback(writer)
                raise

    # -- reading -------------------------------------------------------------------

    async def events(self, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        async with self.db.execute(_EVENTS_AFTER, (after, limit)) as cur:
            rows = await cur.fetchall()
        return [_stored_from_row(tuple(row)) for row in rows]

    async def known_trade_ids(self, ids: Sequence[TradeId]) -> set[TradeId]:
        return set(await self.trade_corrections(ids))

    async def trade_corrections(self, ids: Sequence[TradeId]) -> dict[TradeId, tuple[Fill, int]]:
        wanted = list(dict.fromkeys(ids))
        result: dict[TradeId, tuple[Fill, int]] = {}
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            values = ",".join(["(?, ?)"] * len(chunk))
            params = [v for t in chunk for v in (t.tx_hash, t.log_index)]
            async with self.db.execute(
                "SELECT t.tx_hash, t.log_index, t.symbol, t.direction, t.amount, t.price, "
                "t.block_number, t.block_timestamp, (SELECT COUNT(*) FROM onchain_trades c "
                "WHERE c.corrects = t.tx_hash || ':' || t.log_index) "
                f"FROM (VALUES {values}) AS v JOIN onchain_trades t "
                "ON t.tx_hash = v.column1 AND t.log_index = v.column2",
                params,
            ) as cur:
                rows = await cur.fetchall()
            for tx, idx, symbol, direction, amount, price, block, ts, corrections in rows:
                trade_id = TradeId(tx, int(idx))
                fill = Fill(
                    trade_id,
                    Symbol(symbol),
                    Direction(direction),
                    Decimal(amount),
                    Decimal(price),
                    int(block),
                    datetime.fromisoformat(ts),
                )
                result[trade_id] = (fill, int(corrections))
        return result

    async def cursor(self, source: str) -> Cursor | None:
        async with self.db.execute(
            "SELECT cursor FROM source_cursors WHERE source = ?", (source,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        return value if isinstance(value, dict) else None

    async def positions(self) -> list[PositionRecord]:
        async with self.db.execute(
            "SELECT symbol, net, open_quantity, last_price, hedges_placed, pending_hedge, "
            "fills, updated_at FROM positions ORDER BY symbol"
        ) as cur:
            rows = await cur.fetchall()
        return [
            PositionRecord(
                symbol=Symbol(r[0]),
                net=Decimal(r[1]),
                open_quantity=Decimal(r[2]),
                last_price=None if r[3] is None else Decimal(r[3]),
                hedges_placed=int(r[4]),
                pending_hedge=r[5],
                fills=int(r[6]),
                updated_at=datetime.fromisoformat(r[7]),
            )
            for r in rows
        ]

    async def hedge_orders(
        self, *, open_only: bool = False, symbol: str | None = None
    ) -> list[HedgeOrderRecord]:
        sql = (
            "SELECT client_order_id, symbol, side, quantity, reference_price, state, "
            "broker_order_id, filled_quantity, average_price, reason, created_at, updated_at "
            "FROM hedge_orders WHERE 1=1"
        )
        params: list[Any] = []
        if open_only:
            sql += " AND state IN ('pending', 'submitted', 'partially_filled')"
        if symbol is not None:
            sql += " AND symbol = ?"
            params.append(symbol)
        sql += " ORDER BY created_at, client_order_id"
        async with self.db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        records = []
        for r in rows:
            reserved = await self._reserved(r[0]) if r[5] in OPEN_STATES else ()
            records.append(
                HedgeOrderRecord(
                    client_order_id=r[0],
                    symbol=Symbol(r[1]),
                    side=r[2],
                    quantity=Decimal(r[3]),
                    reference_price=Decimal(r[4]),
                    state=r[5],
                    broker_order_id=r[6],
                    filled_quantity=Decimal(r[7]),
                    average_price=None if r[8] is None else Decimal(r[8]),
                    reason=r[9],
                    created_at=datetime.fromisoformat(r[10]),
                    updated_at=datetime.fromisoformat(r[11]),
                    reserved=reserved,
                )
            )
        return records

    async def _reserved(self, cid: str) -> tuple[tuple[TradeId, Decimal], ...]:
        async with self.db.execute(
            "SELECT t.tx_hash, t.log_index, l.quantity FROM fill_allocations l "
            "JOIN onchain_trades t ON t.id = l.trade "
            "WHERE l.counterpart = ? AND l.kind = 'reserved' ORDER BY t.arrival",
            (cid,),
        ) as cur:
            rows = await cur.fetchall()
        return tuple((TradeId(r[0], int(r[1])), Decimal(r[2])) for r in rows)

    async def books(self) -> list[BookSnapshot]:
        positions = await self.positions()
        lots: dict[str, list[OpenLot]] = {}
        async with self.db.execute(
            "SELECT symbol, tx_hash, log_index, direction, open_quantity FROM onchain_trades "
            "WHERE open_quantity != '0' ORDER BY symbol, arrival"
        ) as cur:
            async for r in cur:
                lots.setdefault(r[0], []).append(
                    OpenLot(TradeId(r[1], int(r[2])), r[3], Decimal(r[4]))
                )
        in_flight = {h.symbol.ticker: h for h in await self.hedge_orders(open_only=True)}
        return [
            BookSnapshot(p, tuple(lots.get(p.symbol.ticker, ())), in_flight.get(p.symbol.ticker))
            for p in positions
        ]

    @property
    def reads(self) -> SqliteReads:
        """The read models (:mod:`.read_models`) on this store's reader connection."""
        return SqliteReads(self.fetch)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only query for reports (audit, dashboard)."""
        async with self.db.execute(sql, params) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def get_blob(self, namespace: str, key: str) -> bytes | None:
        async with self.db.execute(
            "SELECT value FROM plugin_blobs WHERE namespace = ? AND key = ?", (namespace, key)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])


_EVENTS_AFTER = (
    "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, payload, metadata, "
    "recorded_at FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?"
)


def _stored_from_row(row: tuple[Any, ...]) -> tuple[int, StoredEvent]:
    rowid, agg_type, agg_id, seq, event_type, payload, metadata, recorded = row
    stored = StoredEvent(
        agg_type,
        agg_id,
        int(seq),
        event_from_json(event_type, payload),
        json.loads(metadata),
        datetime.fromisoformat(recorded),
    )
    return int(rowid), stored


def _too_new(path: Path, version: int) -> str:
    return (
        f"{path} has schema version {version}, newer than this program knows "
        f"({LATEST_VERSION}); upgrade st0x-liquidity"
    )


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
        if not os.access(path.parent, os.W_OK) or not os.access(path, os.R_OK):
            raise StoreError(f"permission denied: cannot open the database {path}") from None
        raise StoreError(f"cannot open database {path}: {exc}") from None


async def _schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ) as cur:
        if await cur.fetchone() is None:
            return 0
    async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _read_holder(db: aiosqlite.Connection) -> LeaseHolder | None:
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


async def _rollback(db: aiosqlite.Connection) -> None:
    with contextlib.suppress(sqlite3.Error, ValueError):  # BEGIN itself may have failed
        await db.execute("ROLLBACK")


async def _enter_wal(db: aiosqlite.Connection) -> None:
    """Switch to WAL, retrying while another connection holds the file.

    Changing the journal mode needs an exclusive lock, and SQLite does not
    always call the busy handler for it, so the wait is done here.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            async with db.execute("PRAGMA journal_mode=WAL") as cur:
                await cur.fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if loop.time() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


async def _uninterrupted(future: asyncio.Future[_T]) -> _T:
    """Wait for ``future`` to the end even if the caller is cancelled, then re-raise.

    A submitted write is committed whatever happens to its caller; shutdown
    cancels callers, so writes finish before they notice.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    result = future.result()
    if cancelled:
        raise asyncio.CancelledError
    return result


def _split_sql(script: str) -> list[str]:
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

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
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..domain.events import NewEvent, StoredEvent
from ..domain.fills import Direction, Fill, TradeId
from ..domain.symbols import Symbol
from ..errors import StoreError
from ..protocols import BookSnapshot, Cursor, HedgeOrderRecord, OpenLot, PositionRecord
from . import sqlite_writer as writer
from .codec import event_to_json, metadata_to_json
from .lease import LEASE_NAME, FileLock, LeaseHeldError, LeaseHolder, LeaseLostError, this_holder
from .schema import LATEST_VERSION, VIEWS_STALE
from .sqlite_reads import SqliteReads

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "submitted", "partially_filled")
BUSY_TIMEOUT_MS = 10_000
_T = TypeVar("_T")
_CHECKPOINT_EVENTS = 1000
"""Events committed between WAL checkpoints (about SQLite's 1,000-page default)."""
_Entry = tuple[list[NewEvent], "asyncio.Future[list[StoredEvent]]"]


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
        self._writer: sqlite3.Connection | None = None
        self._db: aiosqlite.Connection | None = None
        self._queue: list[_Entry] = []
        self._committer: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._sequences: dict[writer.Key, int] = {}
        self._since_checkpoint = 0
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
            raise LeaseHeldError(str(self.path), self._lock.holder() or await self._holder())
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
        return await _uninterrupted(asyncio.ensure_future(asyncio.to_thread(fn, self._writer, *args)))

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

    @property
    def epoch(self) -> int | None:
        """This holder's lease epoch; None without the lease."""
        return self._epoch

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

    def _fence(self) -> int:
        if self._epoch is None:
            raise StoreError("only the holder of the database's lease writes the event log")
        return self._epoch

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
        encoded: list[tuple[writer.Encoded, asyncio.Future[list[StoredEvent]]]] = []
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
            epoch = self._fence()
            results, assigned = await self._in_writer(
                writer.write_events, epoch, [rows for rows, _ in encoded], dict(self._sequences)
            )
        except BaseException as exc:
            self._sequences.clear()  # read again after a rollback
            error = exc if isinstance(exc, StoreError) else StoreError(f"could not commit: {exc!r}")
            for _, future in encoded:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        self._sequences.update(assigned)
        for (_, future), stored in zip(encoded, results, strict=True):
            if not future.done():
                future.set_result(stored)
        self._since_checkpoint += sum(len(r) for r in results)
        if self._since_checkpoint >= _CHECKPOINT_EVENTS:
            self._since_checkpoint = 0
            with contextlib.suppress(sqlite3.Error):  # busy: the next one catches up
                await self._in_writer(writer.checkpoint)

    async def rebuild_views(self) -> int:
        """Empty every view and refill it by replaying all events; returns the event count."""
        await self.flush()
        async with self._write_lock:
            return await self._in_writer(writer.rebuild_views, self._fence())

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (or failed)."""
        while self._committer is not None:
            await asyncio.wait({self._committer})

    async def put_blob(self, namespace: str, key: str, value: bytes) -> None:
        """Plugin state is not the engine's: ``schwab auth`` writes it beside a running bot."""
        async with self._write_lock:
            await self._in_writer(writer.put_blob, namespace, key, value)

    # -- reading -------------------------------------------------------------------

    async def events(self, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        async with self.db.execute(writer.EVENTS_AFTER, (after, limit)) as cur:
            rows = await cur.fetchall()
        return [writer.stored_from_row(tuple(row)) for row in rows]

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

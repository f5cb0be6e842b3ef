"""SQLite event store: WAL, versioned schema, views in the same transaction.

Every :meth:`SqliteStore.append` lands in one ``BEGIN IMMEDIATE … COMMIT``: the
events and every view row they imply are durable together or not at all.

Writes are pipelined: :meth:`SqliteStore.submit` encodes and projects events on
the caller's turn of the event loop, into the group the next transaction will
write, while the writer process (:mod:`.write_worker`, driven from one thread
here that waits on its pipe) commits the previous group's statements
(multi-row, planned by :mod:`.writes`) in a single round trip per transaction.
Reads go through aiosqlite on another connection, and the duplicate check on a
plain one on the loop thread; all see committed data only (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import json.encoder
import logging
import sqlite3
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..domain.events import (
    EVENT_VERSION,
    NewEvent,
    StoredEvent,
    event_from_payload,
    event_to_json,
    new_stored_event,
)
from ..domain.fills import Direction, Fill, TradeId
from ..domain.symbols import Symbol
from ..errors import StoreError
from ..protocols import BookSnapshot, Cursor, HedgeOrderRecord, OpenLot, PositionRecord
from . import write_worker
from .projection import Batch
from .schema import LATEST_VERSION, MIGRATIONS, VIEW_TABLES, VIEWS_STALE
from .sqlite_reads import SqliteReads
from .write_worker import Row
from .writer_process import WriterProcess
from .writes import view_plan

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "submitted", "partially_filled")


def _now() -> datetime:
    return datetime.now(UTC)


_BUSY_TIMEOUT_MS = write_worker.BUSY_TIMEOUT_MS


async def _enter_wal(db: aiosqlite.Connection) -> None:
    """Switch to WAL, retrying while another connection holds the file.

    Changing the journal mode needs an exclusive lock, and SQLite does not
    always call the busy handler for it (a connection that is itself in the
    middle of recovery answers "database is locked" at once), so the wait is
    done here, bounded by the same timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _BUSY_TIMEOUT_MS / 1000
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


class SqliteStore:
    """The embedded :class:`~st0x_liquidity.protocols.PositionStore`."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._db: aiosqlite.Connection | None = None
        self._writer: WriterProcess | None = None
        self._lookup: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._write_lock = asyncio.Lock()
        self._pending = _Pending()
        self._deferred: list[_Entry] = []
        self._committer: asyncio.Task[None] | None = None
        self._in_flight: deque[tuple[_Pending, int, asyncio.Future[None]]] = deque()
        self._epoch = 0
        self._more = asyncio.Event()
        self._sequences: dict[tuple[str, str], int] = {}
        self.database_id = ""

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        if self._synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"unknown sqlite synchronous mode {self._synchronous!r}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        self._db = db
        try:
            # The busy timeout first: every statement below may meet another
            # process opening the same new file (the bot and the reporter).
            await db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            await _enter_wal(db)
            await db.execute(f"PRAGMA synchronous={self._synchronous}")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.create_function("dec_add", 2, write_worker.dec_add, deterministic=True)
            await self._migrate()
            async with db.execute("SELECT value FROM meta WHERE key='database_id'") as cur:
                row = await cur.fetchone()
            self.database_id = str(row[0]) if row else ""
            lookup = self._lookup = sqlite3.connect(self.path, isolation_level=None)
            lookup.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            lookup.execute("PRAGMA query_only=ON")
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="st0x-store-writer")
            await self._in_writer(self._open_writer_sync)
            stale = lookup.execute(
                "SELECT value FROM meta WHERE key = ?", (VIEWS_STALE,)
            ).fetchone()
            if stale is not None:
                log.warning(
                    "schema %s changed the views: rebuilding them from the events", stale[0]
                )
                count = await self.rebuild_views()
                log.warning("views rebuilt from %d events", count)
        except sqlite3.DatabaseError as exc:
            await self._close_connections()
            raise StoreError(f"{self.path} is not a usable st0x database: {exc}") from None
        except BaseException:
            await self._close_connections()
            raise

    async def close(self) -> None:
        """Commit whatever was submitted, then close both connections."""
        await self.flush()
        await self._close_connections()

    async def _close_connections(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(sqlite3.Error):
                await self._in_writer(self._close_writer_sync)
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def _migrate(self) -> None:
        """Apply missing migrations, each in its own write transaction.

        The version is read inside the transaction, so two processes opening a
        new database at once (the bot and the reporter) cannot both apply one.
        """
        db = self.db
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for version, description, sql in MIGRATIONS:
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
                ) as cur:
                    row = await cur.fetchone()
                current = int(row[0]) if row else 0
                if current > LATEST_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {current}, newer than this program "
                        f"knows ({LATEST_VERSION}); upgrade st0x-liquidity"
                    )
                if version <= current:
                    await db.execute("COMMIT")
                    continue
                for statement in _split_sql(sql):
                    await db.execute(statement)
                if version == 1:
                    await db.execute(
                        "INSERT INTO meta (key, value) VALUES ('database_id', ?), ('created_at', ?)",
                        (uuid.uuid4().hex[:12], _now().isoformat()),
                    )
                await db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, description, _now().isoformat()),
                )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def schema_version(self) -> int:
        async with self.db.execute("SELECT MAX(version) FROM schema_migrations") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # -- writing -------------------------------------------------------------------

    def submit(self, events: Sequence[NewEvent]) -> asyncio.Future[list[StoredEvent]]:
        """Queue ``events`` for commit now, in call order; the future ends with the commit.

        The events are encoded and projected here, on the caller's turn of the
        event loop, while earlier groups are being written by the writer
        process: that is the pipeline. Group commit: everything submitted while
        the writer holds two transactions (one running, one queued) goes into
        the next one (one fsync), in submission order; each caller's events
        stay all-or-nothing.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[StoredEvent]] = loop.create_future()
        if not events:
            future.set_result([])
            return future
        if self._db is None:
            raise StoreError("store is not open")
        entry = (list(events), future)
        if self._deferred or not self._prepare(entry):
            # A stream whose last sequence is not known yet: the committer reads it
            # (asynchronously) and prepares this entry and every later one, in order.
            self._deferred.append(entry)
        self._more.set()
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_loop(), name="store-commit")
        return future

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Commit ``events`` and their view changes atomically; return them as stored.

        A caller cancelled while waiting still has its events committed (they
        were handed to the writer when submitted): the cancellation is raised
        once the transaction has ended, as if the process had stopped right
        after the commit.
        """
        return await _uninterrupted(self.submit(events))

    def _prepare(self, entry: _Entry) -> bool:
        """Encode and project ``entry`` into the pending group; False if a sequence is unknown.

        All-or-nothing: everything that can fail (encoding) is done before the
        pending group changes, so a bad event fails its own caller only.
        """
        events, future = entry
        sequences = self._sequences
        keys = [(new.aggregate_type, new.aggregate_id) for new in events]
        for key in keys:  # a loop, not any(): no generator frame per event
            if key not in sequences:
                return False
        pending = self._pending
        now = pending.now
        assigned: dict[tuple[str, str], int] = {}
        stored: list[StoredEvent] = []
        rows: list[tuple[Any, ...]] = []
        try:
            for new, key in zip(events, keys, strict=True):
                seq = assigned.get(key, sequences[key]) + 1
                assigned[key] = seq
                stored.append(
                    new_stored_event(
                        new.aggregate_type, new.aggregate_id, seq, new.event, new.metadata, now
                    )
                )
                rows.append(
                    (
                        new.aggregate_type,
                        new.aggregate_id,
                        seq,
                        new.event.TYPE,
                        EVENT_VERSION,
                        event_to_json(new.event),
                        _metadata_json(new.metadata),
                        pending.now_text,
                    )
                )
        except Exception as exc:
            future.set_exception(StoreError(f"cannot encode events: {exc}"))
            return True
        sequences.update(assigned)
        pending.rows.extend(rows)
        batch = pending.batch
        for item in stored:
            batch.add(item)
        pending.entries.append((stored, future))
        return True

    async def _commit_loop(self) -> None:
        """Write pending groups one transaction at a time until nothing is pending.

        One transaction is sent ahead while the writer runs another, so the
        writer starts it the moment it commits the first: waiting for this
        loop's turn of the event loop (a batch being applied takes ~20 ms) left
        the writer idle about a third of the time.
        """
        in_flight = self._in_flight
        try:
            while self._pending.entries or self._deferred or in_flight:
                # The lock per transaction, not per run of them: put_blob and
                # rebuild_views get their turn (FIFO) during a long backlog.
                async with self._write_lock:
                    if self._deferred and not in_flight:
                        # Only with nothing in flight: a failed read fails
                        # everything submitted after it, and only that.
                        await self._prepare_deferred()
                    if self._pending.entries and len(in_flight) < _AHEAD:
                        group, self._pending = self._pending, _Pending()
                        in_flight.append((group, self._epoch, self._send(group)))
                    if not in_flight:
                        continue
                    head = in_flight[0][2]
                    if len(in_flight) < _AHEAD and not self._pending.entries:
                        # A slot is free: wake for the head's outcome or for
                        # something new to send, whichever comes first.
                        self._more.clear()
                        more = asyncio.ensure_future(self._more.wait())
                        either: set[asyncio.Future[Any]] = {head, more}
                        try:
                            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            more.cancel()
                    else:
                        await asyncio.wait({head})
                    if head.done():
                        self._finish(*in_flight.popleft())
        except BaseException as exc:  # never leave a caller waiting forever
            # Cancelled or broken: what the writer was given still ends as it
            # ends there; wait for it so its callers learn the truth.
            while in_flight:
                group, epoch, sent = in_flight.popleft()
                await _uninterrupted(asyncio.ensure_future(asyncio.wait({sent})))
                self._finish(group, epoch, sent)
            if not isinstance(exc, asyncio.CancelledError):
                self._fail_all(exc, [])
            raise
        finally:
            self._committer = None

    def _send(self, group: _Pending) -> asyncio.Future[None]:
        """Hand ``group`` to the writer now; the future ends with its transaction."""
        try:
            plan = [("events", group.rows), *view_plan(group.batch)]
        except Exception as exc:
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed
        return asyncio.ensure_future(self._transmit(plan, self._epoch))

    async def _transmit(self, plan: list[tuple[str, Sequence[Row]]], epoch: int) -> None:
        reply = await self._in_writer(self._send_sync, plan, epoch)
        await asyncio.wrap_future(reply)

    def _finish(self, group: _Pending, epoch: int, sent: asyncio.Future[None]) -> None:
        """Settle ``group``'s callers from its transaction's outcome."""
        futures = [f for _, f in group.entries]
        exc = sent.exception() if not sent.cancelled() else asyncio.CancelledError()
        if exc is None:
            for stored, future in group.entries:
                if not future.done():
                    future.set_result(stored)
            return
        error: BaseException = exc
        if isinstance(exc, sqlite3.Error):
            error = StoreError(f"could not commit {len(group.rows)} events: {exc}")
        elif isinstance(exc, asyncio.CancelledError):
            error = StoreError(f"the commit of {len(group.rows)} events was cancelled")
        if epoch < self._epoch:  # failed already, with the group before it
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        self._fail_all(error, futures)

    async def _prepare_deferred(self) -> None:
        """Read the last sequence of the streams deferred entries need, then prepare them.

        Entries that arrive meanwhile are deferred too (order holds); one of them
        may name yet another new stream, hence the loop.
        """
        while self._deferred:
            missing = {
                (new.aggregate_type, new.aggregate_id)
                for events, _ in self._deferred
                for new in events
                if (new.aggregate_type, new.aggregate_id) not in self._sequences
            }
            if missing:
                try:
                    found = await self._in_writer(self._last_sequences_sync, sorted(missing))
                except sqlite3.Error as exc:
                    self._fail_all(StoreError(f"could not read event sequences: {exc}"), [])
                    return
                self._sequences.update(found)
            while self._deferred and self._prepare(self._deferred[0]):
                self._deferred.pop(0)

    def _fail_all(self, exc: BaseException, group: list[asyncio.Future[list[StoredEvent]]]) -> None:
        """Fail ``group`` and everything prepared or deferred after it; forget sequences.

        What was prepared after a failed group counted on its sequences.
        """
        later, self._pending = self._pending, _Pending()
        deferred, self._deferred = self._deferred, []
        self._sequences.clear()
        # Transactions already handed to the writer in this epoch are refused
        # by it unwritten; later ones start a new epoch.
        self._epoch += 1
        error = exc if isinstance(exc, StoreError) else StoreError(f"commit failed: {exc!r}")
        sent = [f for g, _, _ in self._in_flight for _, f in g.entries]
        futures = group + sent + [f for _, f in later.entries] + [f for _, f in deferred]
        for future in futures:
            if not future.done():
                future.set_exception(error)

    def _in_writer(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        if self._pool is None:
            raise StoreError("store is not open")
        return asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    # The *_sync methods run on the store's one pool thread, which talks to the
    # writer process (sends in order; a reader thread in WriterProcess answers).

    def _open_writer_sync(self) -> None:
        writer = WriterProcess(self.path, self._synchronous)
        writer.start()
        self._writer = writer

    def _close_writer_sync(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _writer_proc(self) -> WriterProcess:
        if self._writer is None:
            raise StoreError("store is not open")
        return self._writer

    def _last_sequences_sync(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        writer = self._writer_proc()
        return {
            key: int(
                writer.call(
                    "query",
                    "SELECT COALESCE(MAX(sequence), 0) FROM events "
                    "WHERE aggregate_type = ? AND aggregate_id = ?",
                    key,
                )[0][0]
            )
            for key in keys
        }

    def _send_sync(self, plan: list[tuple[str, Sequence[Row]]], epoch: int) -> Future[Any]:
        return self._writer_proc().send("transaction", plan, epoch)

    def _rebuild_sync(self) -> int:
        # On a connection of its own: the writer process is idle (the write
        # lock is held and everything submitted is committed).
        db = write_worker.connect(str(self.path), self._synchronous)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for table in VIEW_TABLES:
                    db.execute(f"DELETE FROM {table}")
                count = 0
                last = 0
                while True:
                    rows = db.execute(_EVENTS_AFTER, (last, 5000)).fetchall()
                    if not rows:
                        break
                    batch = Batch()
                    for row in rows:
                        batch.add(_stored_from_row(row)[1])
                    write_worker.execute_plan(db, view_plan(batch))
                    last = int(rows[-1][0])
                    count += len(rows)
                db.execute("DELETE FROM meta WHERE key = ?", (VIEWS_STALE,))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        finally:
            db.close()
        return count

    async def rebuild_views(self) -> int:
        """Empty every view and refill it by replaying all events; returns the event count."""
        await self.flush()
        async with self._write_lock:
            return await self._in_writer(self._rebuild_sync)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (or failed)."""
        while self._committer is not None:
            # wait() does not raise the committer's failure (its callers got it).
            await asyncio.wait({self._committer})

    # -- reading -------------------------------------------------------------------

    async def _read_events(self, after: int, limit: int) -> list[tuple[int, StoredEvent]]:
        async with self.db.execute(_EVENTS_AFTER, (after, limit)) as cur:
            rows = await cur.fetchall()
        return [_stored_from_row(tuple(row)) for row in rows]

    async def events(self, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        return await self._read_events(after, limit)

    async def known_trade_ids(self, ids: Sequence[TradeId]) -> set[TradeId]:
        return self._known_trade_ids(ids)

    def _known_trade_ids(self, ids: Sequence[TradeId]) -> set[TradeId]:
        # On the loop thread, on a connection of its own: a few index lookups
        # cost less than the two thread hops of an aiosqlite call, which sat
        # on the path of every batch (0.4 ms of a 2.4 ms hedge decision).
        db = self._lookup_db()
        wanted = {t.text: t for t in ids}  # by text: str hashing is C, TradeId's is Python
        hashes = sorted({t.tx_hash for t in ids})
        found: set[TradeId] = set()
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            rows = ",".join(["(?)"] * len(chunk))
            # A join from the VALUES list probes the (tx_hash, log_index) index
            # once per hash: 0.7 µs a new id, where tx_hash IN (...) first
            # builds and sorts a temporary index of the list (1.1 µs). A
            # row-value IN over VALUES would scan the whole table.
            for tx_hash, log_index in db.execute(
                f"SELECT t.tx_hash, t.log_index FROM (VALUES {rows}) AS v "
                "JOIN onchain_trades t ON t.tx_hash = v.column1",
                chunk,
            ):
                trade_id = wanted.get(f"{tx_hash}:{log_index}")
                if trade_id is not None:
                    found.add(trade_id)
        return found

    async def trade_corrections(self, ids: Sequence[TradeId]) -> dict[TradeId, tuple[Fill, int]]:
        known = self._known_trade_ids(ids)
        result: dict[TradeId, tuple[Fill, int]] = {}
        db = self._lookup_db()
        for trade_id in known:
            row = db.execute(
                "SELECT symbol, direction, amount, price, block_number, block_timestamp, "
                "(SELECT COUNT(*) FROM onchain_trades c WHERE c.corrects = ?) "
                "FROM onchain_trades WHERE tx_hash = ? AND log_index = ?",
                (str(trade_id), trade_id.tx_hash, trade_id.log_index),
            ).fetchone()
            symbol, direction, amount, price, block, ts, corrections = row
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

    def _lookup_db(self) -> sqlite3.Connection:
        if self._lookup is None:
            raise StoreError("store is not open")
        return self._lookup

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
        async with self.db.execute("SELECT * FROM positions ORDER BY symbol") as cur:
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
        sql = "SELECT * FROM hedge_orders WHERE 1=1"
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
            reserved: tuple[tuple[TradeId, Decimal], ...] = ()
            if r[5] in OPEN_STATES:
                reserved = await self._reserved(r[0])
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

    async def put_blob(self, namespace: str, key: str, value: bytes) -> None:
        async with self._write_lock:
            await self.db.execute(
                "INSERT INTO plugin_blobs VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) "
                "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (namespace, key, value, _now().isoformat()),
            )


_T = TypeVar("_T")
_AHEAD = 2
"""Transactions handed to the writer and not answered yet, at most: one running, one queued."""
_Entry = tuple[list[NewEvent], "asyncio.Future[list[StoredEvent]]"]


class _Pending:
    """The group the next transaction writes: event rows and their view changes."""

    def __init__(self) -> None:
        self.now = _now()
        self.now_text = self.now.isoformat()
        self.rows: list[tuple[Any, ...]] = []
        self.batch = Batch()
        self.entries: list[tuple[list[StoredEvent], asyncio.Future[list[StoredEvent]]]] = []


def _metadata_encoder() -> Callable[[dict[str, Any]], str]:
    """``json.dumps(m, separators=(",", ":"), sort_keys=True)`` without its per-call setup.

    json.dumps builds a JSONEncoder and then a C encoder on every call (~10 µs
    per event); this builds the C encoder once. Without cycle detection, as
    ``check_circular=False`` does: metadata is built by the engine from plain
    cursors and never refers to itself. If this interpreter's json module does
    not expose the C encoder as expected, the plain call is used.
    """

    def plain(meta: dict[str, Any]) -> str:
        return json.dumps(meta, separators=(",", ":"), sort_keys=True)

    def unsupported(o: object) -> Any:
        raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")

    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return plain
    try:
        encoder = make(
            None,
            unsupported,
            json.encoder.encode_basestring_ascii,
            None,
            ":",
            ",",
            True,
            False,
            True,
        )
    except Exception:  # pragma: no cover - another signature
        return plain

    by_source: dict[str, str] = {}

    def fast(meta: dict[str, Any]) -> str:
        if len(meta) == 1:  # most fills' metadata: their source's name, and no cursor
            source = meta.get("source")
            if source.__class__ is str:
                text = by_source.get(source)
                if text is None:
                    text = "".join(encoder(meta, 0))
                    if len(by_source) < 64:  # a handful of sources; bounded all the same
                        by_source[source] = text
                return text
        return "".join(encoder(meta, 0))

    sample = {"source": "s", "cursor": {"block": 1, "b": [1.5, None, '\u00e9"', True]}}
    try:
        if fast(sample) != plain(sample) or fast({"source": "s"}) != plain({"source": "s"}):
            return plain  # pragma: no cover
    except Exception:  # pragma: no cover - another signature
        return plain
    return fast


_metadata_json = _metadata_encoder()

_EVENTS_AFTER = (
    "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, payload, metadata, "
    "recorded_at FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?"
)


def _stored_from_row(row: tuple[Any, ...]) -> tuple[int, StoredEvent]:
    rowid, agg_type, agg_id, seq, event_type, payload, metadata, recorded = row
    event = event_from_payload(event_type, json.loads(payload))
    return (
        int(rowid),
        StoredEvent(
            agg_type,
            agg_id,
            int(seq),
            event,
            json.loads(metadata),
            datetime.fromisoformat(recorded),
        ),
    )


async def _uninterrupted(future: asyncio.Future[_T]) -> _T:
    """Wait for ``future`` to the end even if the caller is cancelled, then re-raise.

    A submitted write is committed whatever happens to its caller (a
    transaction cut off between BEGIN and COMMIT would leave the connection
    mid-transaction); shutdown cancels callers, so writes finish before they
    notice.
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

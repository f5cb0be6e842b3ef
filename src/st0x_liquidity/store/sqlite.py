"""SQLite event store through aiosqlite: WAL, versioned schema, views in the same transaction.

Every :meth:`SqliteStore.append` is one ``BEGIN IMMEDIATE … COMMIT``: the events
and every view row they imply are durable together or not at all. Statements
are batched per kind (``executemany``) so a batch of hundreds of fills costs a
dozen round trips to the database thread, not thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from ..domain.events import (
    EVENT_VERSION,
    NewEvent,
    StoredEvent,
    event_from_payload,
    event_to_payload,
)
from ..domain.fills import Direction, Fill, TradeId
from ..domain.numbers import EXACT, fmt
from ..domain.symbols import Symbol
from ..errors import StoreError
from ..protocols import BookSnapshot, Cursor, HedgeOrderRecord, OpenLot, PositionRecord
from .projection import _UNSET, Batch
from .schema import LATEST_VERSION, MIGRATIONS, VIEW_TABLES

OPEN_STATES = ("pending", "submitted", "partially_filled")


def _dec_add(a: str | None, b: str | None) -> str:
    return fmt(EXACT.add(Decimal(a or "0"), Decimal(b or "0")))


def _now() -> datetime:
    return datetime.now(UTC)


_BUSY_TIMEOUT_MS = 10_000


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
        self._write_lock = asyncio.Lock()
        self._queue: list[tuple[list[NewEvent], asyncio.Future[list[StoredEvent]]]] = []
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
            await db.create_function("dec_add", 2, _dec_add, deterministic=True)
            await self._migrate()
            async with db.execute("SELECT value FROM meta WHERE key='database_id'") as cur:
                row = await cur.fetchone()
            self.database_id = str(row[0]) if row else ""
        except sqlite3.DatabaseError as exc:
            await db.close()
            self._db = None
            raise StoreError(f"{self.path} is not a usable st0x database: {exc}") from None

    async def close(self) -> None:
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

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Commit ``events`` and their view changes atomically; return them as stored.

        Group commit: callers that arrive while a transaction is being written
        queue up, and the next one to get the lock commits the whole queue in
        one transaction (one fsync), in arrival order. Each caller's events are
        still all-or-nothing, and the log order is the order of the calls.
        """
        if not events:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[StoredEvent]] = loop.create_future()
        entry = (list(events), future)
        self._queue.append(entry)
        try:
            async with self._write_lock:
                if not future.done():
                    batch, self._queue = self._queue, []
                    await _uninterrupted(self._commit_group(batch))
        except asyncio.CancelledError:
            if entry in self._queue:  # not taken by a writer: it will not be committed
                self._queue.remove(entry)
            raise
        return future.result()

    async def _commit_group(
        self, batch: list[tuple[list[NewEvent], asyncio.Future[list[StoredEvent]]]]
    ) -> None:
        db = self.db
        now = _now()
        per_caller: list[list[StoredEvent]] = []
        await db.execute("BEGIN IMMEDIATE")
        try:
            rows = []
            for events, _ in batch:
                stored: list[StoredEvent] = []
                for new in events:
                    seq = await self._next_sequence(new.aggregate_type, new.aggregate_id)
                    stored.append(
                        StoredEvent(
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
                            json.dumps(event_to_payload(new.event), separators=(",", ":")),
                            json.dumps(new.metadata, separators=(",", ":"), sort_keys=True),
                            now.isoformat(),
                        )
                    )
                per_caller.append(stored)
            await db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            await self._project(item for stored in per_caller for item in stored)
            await db.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):  # BEGIN itself may have failed
                await db.execute("ROLLBACK")
            self._sequences.clear()
            error: BaseException = exc
            if isinstance(exc, sqlite3.Error):
                error = StoreError(f"could not commit {len(rows)} events: {exc}")
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(error)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for stored, (_, future) in zip(per_caller, batch, strict=True):
            for item in stored:
                self._sequences[(item.aggregate_type, item.aggregate_id)] = item.sequence
            if not future.done():
                future.set_result(stored)

    async def _next_sequence(self, aggregate_type: str, aggregate_id: str) -> int:
        key = (aggregate_type, aggregate_id)
        last = self._sequences.get(key)
        if last is None:
            async with self.db.execute(
                "SELECT COALESCE(MAX(sequence), 0) FROM events "
                "WHERE aggregate_type = ? AND aggregate_id = ?",
                key,
            ) as cur:
                row = await cur.fetchone()
            last = int(row[0]) if row else 0
        self._sequences[key] = last + 1
        return last + 1

    async def _project(self, stored: Iterable[StoredEvent]) -> None:
        batch = Batch()
        for item in stored:
            batch.add(item)
        db = self.db
        if batch.trades:
            await db.executemany(
                "INSERT INTO onchain_trades (tx_hash, log_index, symbol, direction, amount, price, "
                "block_number, block_timestamp, arrival, open_quantity, source, recorded_at, "
                "corrects, correction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch.trades,
            )
        if batch.hedges:
            # One upsert per order in first-seen order, so an order that closes in
            # this batch is terminal before the next order of its symbol is inserted
            # (the one-open-hedge-per-symbol index holds at every statement).
            await db.executemany(
                "INSERT INTO hedge_orders (client_order_id, symbol, side, quantity, "
                "reference_price, state, broker_order_id, filled_quantity, average_price, reason, "
                "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, COALESCE(?8, '0'), ?9, "
                "?10, ?11, ?12) ON CONFLICT (client_order_id) DO UPDATE SET state = ?6, "
                "broker_order_id = COALESCE(?7, broker_order_id), "
                "filled_quantity = COALESCE(?8, filled_quantity), "
                "average_price = COALESCE(?9, average_price), reason = COALESCE(?10, reason), "
                "updated_at = ?12",
                [
                    (
                        row["client_order_id"],
                        row.get("symbol", ""),
                        row.get("side", "BUY"),
                        row.get("quantity", "0"),
                        row.get("reference_price", "0"),
                        row["state"],
                        row.get("broker_order_id"),
                        row.get("filled_quantity"),
                        row.get("average_price"),
                        row.get("reason"),
                        row.get("created_at", row["updated_at"]),
                        row["updated_at"],
                    )
                    for row in batch.hedges.values()
                ],
            )
        if batch.open_deltas:
            await db.executemany(
                "UPDATE onchain_trades SET open_quantity = dec_add(open_quantity, ?) "
                "WHERE tx_hash = ? AND log_index = ?",
                [(fmt(d), t.tx_hash, t.log_index) for t, d in batch.open_deltas.items() if d],
            )
        if batch.link_deltas:
            await db.executemany(
                "INSERT INTO fill_links (tx_hash, log_index, kind, counterpart, quantity) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tx_hash, log_index, kind, counterpart) "
                "DO UPDATE SET quantity = dec_add(quantity, excluded.quantity)",
                [
                    (t.tx_hash, t.log_index, kind, other, fmt(d))
                    for (t, kind, other), d in batch.link_deltas.items()
                    if d
                ],
            )
            emptied = [
                (t.tx_hash, t.log_index, kind, other)
                for (t, kind, other), d in batch.link_deltas.items()
                if d < 0
            ]
            if emptied:  # only links that shrank can have reached zero
                await db.executemany(
                    "DELETE FROM fill_links WHERE tx_hash = ? AND log_index = ? AND kind = ? "
                    "AND counterpart = ? AND quantity = '0'",
                    emptied,
                )
        if batch.positions:
            rows = []
            for symbol, p in batch.positions.items():
                pending_set = p.pending is not _UNSET
                rows.append(
                    (
                        symbol,
                        fmt(p.net),
                        fmt(p.open),
                        None if p.last_price is None else fmt(p.last_price),
                        p.hedges,
                        p.pending if pending_set else None,
                        p.fills,
                        p.updated_at,
                        int(pending_set),
                    )
                )
            await db.executemany(
                "INSERT INTO positions (symbol, net, open_quantity, last_price, hedges_placed, "
                "pending_hedge, fills, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                "ON CONFLICT (symbol) DO UPDATE SET net = dec_add(net, ?2), "
                "open_quantity = dec_add(open_quantity, ?3), "
                "last_price = COALESCE(?4, last_price), hedges_placed = hedges_placed + ?5, "
                "pending_hedge = CASE WHEN ?9 THEN ?6 ELSE pending_hedge END, "
                "fills = fills + ?7, updated_at = ?8",
                rows,
            )
        if batch.cursors:
            await db.executemany(
                "INSERT INTO source_cursors (source, cursor, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, "
                "updated_at = excluded.updated_at",
                [(s, c, w) for s, (c, w) in batch.cursors.items()],
            )
        if batch.skipped:
            await db.executemany(
                "INSERT INTO skipped_inputs VALUES (?, ?, ?, ?, ?, ?)", batch.skipped
            )

    async def rebuild_views(self) -> int:
        """Empty every view and refill it by replaying all events; returns the event count."""
        async with self._write_lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            try:
                for table in VIEW_TABLES:
                    await db.execute(f"DELETE FROM {table}")
                count = 0
                last = 0
                while True:
                    chunk = await self._read_events(last, 5000)
                    if not chunk:
                        break
                    await self._project(ev for _, ev in chunk)
                    last = chunk[-1][0]
                    count += len(chunk)
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            return count

    # -- reading -------------------------------------------------------------------

    async def _read_events(self, after: int, limit: int) -> list[tuple[int, StoredEvent]]:
        async with self.db.execute(
            "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, payload, metadata, "
            "recorded_at FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit),
        ) as cur:
            rows = await cur.fetchall()
        result = []
        for rowid, agg_type, agg_id, seq, event_type, payload, metadata, recorded in rows:
            event = event_from_payload(event_type, json.loads(payload))
            result.append(
                (
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
            )
        return result

    async def events(self, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        return await self._read_events(after, limit)

    async def known_trade_ids(self, ids: Sequence[TradeId]) -> set[TradeId]:
        wanted = set(ids)
        hashes = sorted({t.tx_hash for t in wanted})
        found: set[TradeId] = set()
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            marks = ",".join("?" for _ in chunk)
            # tx_hash IN (...) walks the primary-key index; a row-value IN over a
            # VALUES list would scan the whole table once per batch.
            async with self.db.execute(
                f"SELECT tx_hash, log_index FROM onchain_trades WHERE tx_hash IN ({marks})",
                chunk,
            ) as cur:
                for tx_hash, log_index in await cur.fetchall():
                    trade_id = TradeId(tx_hash, int(log_index))
                    if trade_id in wanted:
                        found.add(trade_id)
        return found

    async def trade_corrections(
        self, ids: Sequence[TradeId]
    ) -> dict[TradeId, tuple[Fill, int]]:
        known = await self.known_trade_ids(ids)
        result: dict[TradeId, tuple[Fill, int]] = {}
        for trade_id in known:
            rows = await self.fetch(
                "SELECT symbol, direction, amount, price, block_number, block_timestamp, "
                "(SELECT COUNT(*) FROM onchain_trades c WHERE c.corrects = ?) "
                "FROM onchain_trades WHERE tx_hash = ? AND log_index = ?",
                (str(trade_id), trade_id.tx_hash, trade_id.log_index),
            )
            symbol, direction, amount, price, block, ts, corrections = rows[0]
            fill = Fill(
                trade_id, Symbol(symbol), Direction(direction), Decimal(amount), Decimal(price),
                int(block), datetime.fromisoformat(ts),
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
            "SELECT l.tx_hash, l.log_index, l.quantity FROM fill_links l "
            "JOIN onchain_trades t USING (tx_hash, log_index) "
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


async def _uninterrupted(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to the end even if the caller is cancelled, then re-raise.

    A transaction cut off between BEGIN and COMMIT by a cancellation would leave
    the connection mid-transaction (and a cancelled COMMIT may still have
    committed); shutdown cancels callers, so writes finish before they notice.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


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

"""The dry-run broker's order book: a SQLite file of its own beside the bot's, or
tables in the bot's PostgreSQL database.

A real broker keeps orders on its side; the pretend one keeps them here, so
the engine's crash recovery finds them by ``client_order_id`` exactly as it
would at a real broker. An order and its placement attempt commit together,
as one broker-side fact; a reused ``client_order_id`` is refused and logged.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from ..domain.numbers import fmt
from ..errors import StoreError, StoreUnavailableError
from .side_db import ERRORS, SideDb, Where, describe, explain, is_postgres

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    broker_order_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    outcome TEXT NOT NULL,
    filled_quantity TEXT NOT NULL,
    reason TEXT,
    placed_at TEXT NOT NULL,
    done_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS placements (
    client_order_id TEXT NOT NULL,
    attempted_at TEXT NOT NULL,
    result TEXT NOT NULL
);
"""
LIMIT_COLUMNS = {"limit_price": "TEXT", "session": "TEXT"}
"""Added for limit orders (extended hours); NULL for market orders and older files."""
_COLUMNS = (
    "broker_order_id, client_order_id, symbol, side, quantity, price, outcome, "
    "filled_quantity, reason, placed_at, done_at, limit_price, session"
)
POSTGRES_SCHEMA = tuple(
    statement.strip()
    for statement in _SCHEMA.replace("TABLE IF NOT EXISTS ", "TABLE IF NOT EXISTS dry_run_").split(
        ";"
    )
    if statement.strip()
) + tuple(
    f"ALTER TABLE dry_run_orders ADD COLUMN IF NOT EXISTS {name} {kind}"
    for name, kind in LIMIT_COLUMNS.items()
)
"""The same tables in the bot's PostgreSQL database, named ``dry_run_*`` (with the
limit columns added to tables made before limit orders existed)."""
_FILE_TABLES = ("orders", "placements")
OPEN = "open"
"""A limit order's outcome while it rests at the pretend broker (not settled yet)."""
ACCEPTED = "accepted"
DUPLICATE = "rejected: duplicate client_order_id"


@attrs.frozen
class LedgerOrder:
    """One order as the pretend broker settled it (``outcome``: filled, failed, cancelled)."""

    broker_order_id: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    outcome: str
    filled_quantity: Decimal
    reason: str | None
    placed_at: datetime
    done_at: datetime
    """Market: when the outcome shows. Limit: when the ``day`` order expires."""
    limit_price: Decimal | None = None
    session: str | None = None

    @property
    def is_limit(self) -> bool:
        return self.limit_price is not None


def _order(row: tuple[object, ...]) -> LedgerOrder:
    bid, cid, symbol, side, qty, price, outcome, filled, reason, placed, done, limit, session = row
    return LedgerOrder(
        str(bid),
        str(cid),
        str(symbol),
        str(side),
        Decimal(str(qty)),
        Decimal(str(price)),
        str(outcome),
        Decimal(str(filled)),
        None if reason is None else str(reason),
        datetime.fromisoformat(str(placed)),
        datetime.fromisoformat(str(done)),
        None if limit is None else Decimal(str(limit)),
        None if session is None else str(session),
    )


class DryRunLedger:
    """The pretend broker's orders: in a SQLite file of their own (``<db>.dry-run.sqlite``,
    tables ``orders`` and ``placements``), or, given the bot's PostgreSQL URL, in its
    tables ``dry_run_orders`` and ``dry_run_placements`` (created on first use, like the file), so a standby
    that takes over finds the orders the leader placed, as at a real broker."""

    def __init__(self, where: Where) -> None:
        self.where = where
        self.path = where
        self._db: SideDb | None = None
        self._lock = asyncio.Lock()
        self._orders, self._placements = (
            ("dry_run_orders", "dry_run_placements") if is_postgres(where) else _FILE_TABLES
        )

    async def open(self) -> None:
        if is_postgres(self.where):
            db = await SideDb.open(self.where)
            try:
                # The broker's side, not the bot's schema: created on first use,
                # as the file is (an advisory lock: two creators at once would clash).
                async with db.transaction("dry_run_orders"):
                    for statement in POSTGRES_SCHEMA:
                        await db.execute(statement)
            except BaseException as exc:
                await db.close()
                if isinstance(exc, ERRORS):
                    raise StoreError(
                        f"dry-run orders in {describe(self.where)}: {explain(self.where, exc)}"
                    ) from None
                raise
            self._db = db
            return
        try:
            db = await SideDb.open_file(Path(self.where), _SCHEMA)
        except StoreError as exc:
            raise StoreError(f"dry-run order file {exc}") from None
        try:
            have = {str(r[1]) for r in await db.fetch("PRAGMA table_info(orders)")}
            for name, kind in LIMIT_COLUMNS.items():
                if name not in have:
                    await db.execute(f"ALTER TABLE orders ADD COLUMN {name} {kind}")
        except BaseException as exc:
            await db.close()
            if isinstance(exc, ERRORS):
                raise StoreError(
                    f"dry-run order file {describe(self.where)}: {explain(self.where, exc)}"
                ) from None
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def _conn(self) -> SideDb:
        if self._db is None:
            raise StoreError("dry-run executor is not started")
        return self._db

    async def record(self, order: LedgerOrder) -> bool:
        """Keep ``order`` and log the attempt; False if its ``client_order_id`` was used.

        :class:`StoreUnavailableError` when the database did not answer: the outcome
        is unknown, as a broker's is after a dropped connection."""
        try:
            return await self._record(order)
        except ERRORS as exc:
            raise StoreUnavailableError(f"dry-run orders: {explain(self.where, exc)}") from None

    async def _record(self, order: LedgerOrder) -> bool:
        db = self._conn
        async with self._lock, db.transaction(self._orders):
            added = await db.execute(
                f"INSERT INTO {self._orders} ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    order.broker_order_id,
                    order.client_order_id,
                    order.symbol,
                    order.side,
                    fmt(order.quantity),
                    fmt(order.price),
                    order.outcome,
                    fmt(order.filled_quantity),
                    order.reason,
                    order.placed_at.isoformat(),
                    order.done_at.isoformat(),
                    None if order.limit_price is None else fmt(order.limit_price),
                    order.session,
                ),
            )
            result = ACCEPTED if added == 1 else DUPLICATE
            await db.execute(
                f"INSERT INTO {self._placements} VALUES (?, ?, ?)",
                (order.client_order_id, order.placed_at.isoformat(), result),
            )
        return result == ACCEPTED

    async def settle(
        self,
        broker_order_id: str,
        outcome: str,
        filled: Decimal,
        price: Decimal,
        reason: str | None,
    ) -> LedgerOrder | None:
        """A resting limit order filled (in part) or ended; a settled one stays as it is."""
        db = self._conn
        try:
            async with self._lock, db.transaction(self._orders):
                await db.execute(
                    f"UPDATE {self._orders} SET outcome = ?, filled_quantity = ?, price = ?, "
                    "reason = COALESCE(?, reason) WHERE broker_order_id = ? AND outcome = ?",
                    (outcome, fmt(filled), fmt(price), reason, broker_order_id, OPEN),
                )
        except ERRORS as exc:
            raise StoreUnavailableError(f"dry-run orders: {explain(self.where, exc)}") from None
        return await self.by_broker_id(broker_order_id)

    async def _fetch(self, sql: str, params: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return await self._conn.fetch(sql, params)
        except ERRORS as exc:
            raise StoreUnavailableError(f"dry-run orders: {explain(self.where, exc)}") from None

    async def _one(self, column: str, value: str) -> LedgerOrder | None:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {self._orders} WHERE {column} = ?", (value,)
        )
        return _order(rows[0]) if rows else None

    async def by_broker_id(self, broker_order_id: str) -> LedgerOrder | None:
        return await self._one("broker_order_id", broker_order_id)

    async def by_client_id(self, client_order_id: str) -> LedgerOrder | None:
        return await self._one("client_order_id", client_order_id)

    async def orders(self) -> list[LedgerOrder]:
        return [_order(r) for r in await self._fetch(f"SELECT {_COLUMNS} FROM {self._orders}")]

    async def placement_counts(self) -> dict[str, int]:
        """How often each ``client_order_id`` reached this broker."""
        rows = await self._fetch(
            f"SELECT client_order_id, COUNT(*) FROM {self._placements} GROUP BY client_order_id"
        )
        return {str(c): int(n) for c, n in rows}

"""The dry-run broker's order book: a SQLite file of its own, beside the bot's.

A real broker keeps orders on its side; the pretend one keeps them here, so
the engine's crash recovery finds them by ``client_order_id`` exactly as it
would at a real broker. An order and its placement attempt commit together,
as one broker-side fact; a reused ``client_order_id`` is refused and logged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import aiosqlite
import attrs

from ..domain.numbers import fmt
from ..errors import StoreError

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
_LIMIT_COLUMNS = {"limit_price": "TEXT", "session": "TEXT"}
"""Added for limit orders (extended hours); NULL for market orders and older files."""
_COLUMNS = (
    "broker_order_id, client_order_id, symbol, side, quantity, price, outcome, "
    "filled_quantity, reason, placed_at, done_at, limit_price, session"
)
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
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=FULL")
            await self._db.executescript(_SCHEMA)
            async with self._db.execute("PRAGMA table_info(orders)") as cur:
                have = {str(r[1]) async for r in cur}
            for name, kind in _LIMIT_COLUMNS.items():
                if name not in have:
                    await self._db.execute(f"ALTER TABLE orders ADD COLUMN {name} {kind}")
        except sqlite3.Error as exc:
            raise StoreError(f"dry-run order file {self.path}: {exc}") from None

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("dry-run executor is not started")
        return self._db

    async def record(self, order: LedgerOrder) -> bool:
        """Keep ``order`` and log the attempt; False if its ``client_order_id`` was used."""
        db = self._conn
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.execute(
                    f"INSERT INTO orders ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                result = ACCEPTED
            except sqlite3.IntegrityError:
                result = DUPLICATE
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute(
                "INSERT INTO placements VALUES (?, ?, ?)",
                (order.client_order_id, order.placed_at.isoformat(), result),
            )
            await db.execute("COMMIT")
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
        async with self._lock:
            await db.execute(
                "UPDATE orders SET outcome = ?, filled_quantity = ?, price = ?, "
                "reason = COALESCE(?, reason) WHERE broker_order_id = ? AND outcome = ?",
                (outcome, fmt(filled), fmt(price), reason, broker_order_id, OPEN),
            )
        return await self.by_broker_id(broker_order_id)

    async def _one(self, column: str, value: str) -> LedgerOrder | None:
        async with self._conn.execute(
            f"SELECT {_COLUMNS} FROM orders WHERE {column} = ?", (value,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _order(tuple(row))

    async def by_broker_id(self, broker_order_id: str) -> LedgerOrder | None:
        return await self._one("broker_order_id", broker_order_id)

    async def by_client_id(self, client_order_id: str) -> LedgerOrder | None:
        return await self._one("client_order_id", client_order_id)

    async def orders(self) -> list[LedgerOrder]:
        async with self._conn.execute(f"SELECT {_COLUMNS} FROM orders") as cur:
            return [_order(tuple(r)) for r in await cur.fetchall()]

    async def placement_counts(self) -> dict[str, int]:
        """How often each ``client_order_id`` reached this broker."""
        async with self._conn.execute(
            "SELECT client_order_id, COUNT(*) FROM placements GROUP BY client_order_id"
        ) as cur:
            return {str(c): int(n) async for c, n in cur}

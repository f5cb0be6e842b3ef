"""The P&L reporter's own tables: ``metrics_pnl``, its open lots and its checkpoint.

The reporter runs beside the engine on the same database. It writes only these
tables, each increment in one short transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: under an advisory lock) that first
checks the checkpoint is still the one it read: a second reporter is detected
instead of writing duplicates, and the engine's writes wait at most one
increment for the lock. It never writes the engine's event streams or views.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ..domain.fills import Direction
from ..domain.numbers import fmt
from ..domain.pnl import PnlBook, PnlLot, PnlRow, PnlTrade
from .read_models import DecimalText
from .side_db import SideDb
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore

_COLUMNS = (
    "position, symbol, time, trade_time, venue, trade_id, direction, quantity, price, "
    "matched_quantity, realized_pnl, cumulative_pnl, net_position_after"
)
_TABLES = ("metrics_pnl", "metrics_pnl_lots", "metrics_pnl_symbols", "metrics_pnl_checkpoint")


class CheckpointMovedError(Exception):
    """Another reporter wrote ``metrics_pnl`` since this one read its state."""


@attrs.frozen
class PnlRecord:
    """One ``metrics_pnl`` row; :meth:`to_json` is its stable JSON shape."""

    position: int
    symbol: str
    time: str
    trade_time: str
    venue: str
    trade_id: str
    direction: str
    quantity: DecimalText
    price: DecimalText
    matched_quantity: DecimalText
    realized_pnl: DecimalText | None
    cumulative_pnl: DecimalText
    net_position_after: DecimalText

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def to_row(self) -> PnlRow:
        return PnlRow(
            PnlTrade(
                self.position,
                self.symbol,
                self.venue,
                self.trade_id,
                Direction(self.direction),
                Decimal(self.quantity),
                Decimal(self.price),
                datetime.fromisoformat(self.time),
                datetime.fromisoformat(self.trade_time),
            ),
            Decimal(self.matched_quantity),
            None if self.realized_pnl is None else Decimal(self.realized_pnl),
            Decimal(self.cumulative_pnl),
            Decimal(self.net_position_after),
        )


def pnl_record(row: PnlRow) -> PnlRecord:
    """How a matched trade is stored (decimals as canonical strings)."""
    t = row.trade
    return PnlRecord(
        t.position,
        t.symbol,
        t.time.isoformat(),
        (t.trade_time or t.time).isoformat(),
        t.venue,
        t.trade_id,
        t.direction.value,
        fmt(t.quantity),
        fmt(t.price),
        fmt(row.matched),
        None if row.realized is None else fmt(row.realized),
        fmt(row.cumulative),
        fmt(row.net_after),
    )


class PnlTables(Protocol):
    """The reporter's persisted state, whatever the backend."""

    async def checkpoint(self) -> int: ...

    async def load_book(self) -> PnlBook:
        """Open lots, cumulative P&L and checkpoint as last written."""
        ...

    async def write(
        self, expected: int, rows: Sequence[PnlRow], symbols: Iterable[str], book: PnlBook
    ) -> None:
        """Add ``rows`` and the state of ``symbols`` after them, if the checkpoint is
        still ``expected`` (else :class:`CheckpointMovedError`); all or nothing."""
        ...

    async def clear(self) -> None:
        """Empty the rows and the state (a rebuild follows)."""
        ...

    async def records(self, symbol: str | None = None) -> list[PnlRecord]:
        """The rows in log order, optionally of one symbol."""
        ...


class SqlitePnlTables:
    """:class:`PnlTables` on a connection of the reporter's, either backend (the name is
    historical). Each write is one transaction under the ``metrics_pnl`` lock
    (SQLite: ``BEGIN IMMEDIATE``), so the checkpoint it checks stays put until it commits."""

    def __init__(self, db: SideDb) -> None:
        self._db = db

    async def checkpoint(self) -> int:
        rows = await self._db.fetch("SELECT position FROM metrics_pnl_checkpoint WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    async def load_book(self) -> PnlBook:
        lots: dict[str, list[PnlLot]] = {}
        for symbol, direction, qty, price, opened_by in await self._db.fetch(
            "SELECT symbol, direction, quantity, price, opened_by FROM metrics_pnl_lots "
            "ORDER BY symbol, seq"
        ):
            lots.setdefault(symbol, []).append(
                PnlLot(Direction(direction), Decimal(qty), Decimal(price), opened_by)
            )
        cumulative: dict[str, Decimal] = {}
        last: dict[str, int] = {}
        for symbol, cum, position in await self._db.fetch(
            "SELECT symbol, cumulative_pnl, last_position FROM metrics_pnl_symbols"
        ):
            cumulative[symbol] = Decimal(cum)
            last[symbol] = int(position)
        return PnlBook.restore(await self.checkpoint(), lots, cumulative, last)

    async def write(
        self, expected: int, rows: Sequence[PnlRow], symbols: Iterable[str], book: PnlBook
    ) -> None:
        db = self._db
        now = datetime.now(UTC).isoformat()
        async with db.transaction("metrics_pnl"):
            if await self.checkpoint() != expected:
                raise CheckpointMovedError(
                    "metrics_pnl was advanced by another reporter; reloading its state"
                )
            await db.executemany(
                "INSERT INTO metrics_pnl VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [attrs.astuple(pnl_record(r)) for r in rows],
            )
            for symbol in sorted(set(symbols)):
                sym = book.symbols[symbol]
                await db.execute("DELETE FROM metrics_pnl_lots WHERE symbol = ?", (symbol,))
                await db.executemany(
                    "INSERT INTO metrics_pnl_lots VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            symbol,
                            i,
                            lot.direction.value,
                            fmt(lot.quantity),
                            fmt(lot.price),
                            lot.opened_by,
                        )
                        for i, lot in enumerate(sym.lots)
                    ],
                )
                await db.execute(
                    "INSERT INTO metrics_pnl_symbols VALUES (?, ?, ?) ON CONFLICT (symbol) "
                    "DO UPDATE SET cumulative_pnl = excluded.cumulative_pnl, "
                    "last_position = excluded.last_position",
                    (symbol, fmt(sym.cumulative), sym.last_position),
                )
            await db.execute(
                "INSERT INTO metrics_pnl_checkpoint VALUES (1, ?, ?) ON CONFLICT (id) "
                "DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                (book.checkpoint, now),
            )

    async def clear(self) -> None:
        async with self._db.transaction("metrics_pnl"):
            for table in _TABLES:
                await self._db.execute(f"DELETE FROM {table}")

    async def records(self, symbol: str | None = None) -> list[PnlRecord]:
        sql = f"SELECT {_COLUMNS} FROM metrics_pnl"
        params: tuple[Any, ...] = ()
        if symbol:
            sql += " WHERE symbol = ?"
            params = (symbol,)
        return [
            PnlRecord(int(r[0]), *r[1:])
            for r in await self._db.fetch(sql + " ORDER BY position", params)
        ]


def pnl_tables(store: SqliteStore | PostgresStore) -> SqlitePnlTables:
    """The reporter's tables on the store's reader connection (the reporter's own process)."""
    if isinstance(store, SqliteStore):
        return SqlitePnlTables(SideDb.of(store.path, lambda: store.db))
    return SqlitePnlTables(SideDb.of(store.url, lambda: store.db, store.reopen_reader))

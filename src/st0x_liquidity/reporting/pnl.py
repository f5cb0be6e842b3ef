"""The P&L reporter: FIFO-matched trades of the event log into ``metrics_pnl``.

Input is the event log itself, read in its global order (``events.rowid``):

* ``FillRecorded`` — an onchain fill (venue ``onchain``), at the fill's price;
* ``HedgeClosed`` with a filled quantity — a broker trade (venue ``broker``) of
  everything the hedge filled, at its average price. A hedge that partly filled
  and was then cancelled or failed counts what filled. A hedge enters the P&L
  when it closes (its partial progress before that is not yet a trade).

The checkpoint is the log position of the last event processed. Every event
committed later has a larger position, so each trade is processed exactly once
and a late-arriving trade can never slip in "before" the checkpoint (the seed
system's timestamp checkpoint lost such trades). The open lots and cumulative
P&L are persisted beside the rows, so an increment never reloads history; the
rows, lots and checkpoint of one increment commit in one transaction, and a
concurrent second reporter is detected (the checkpoint moved) instead of
writing duplicates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiosqlite
import attrs

from ..domain.events import FillRecorded, HedgeClosed
from ..domain.fills import Direction
from ..domain.numbers import ZERO, fmt
from ..domain.pnl import (
    BROKER,
    ONCHAIN,
    PnlBook,
    PnlLot,
    PnlRow,
    PnlTrade,
    SymbolSummary,
    summarize,
)
from ..store.codec import event_from_payload

log = logging.getLogger(__name__)

TRADE_EVENTS = ("FillRecorded", "HedgeClosed")
CHUNK = 1000
"""Trades per increment: each is one write transaction, kept short so the bot's
commits on the same file wait little for the lock (5,000 held it ~5x longer)."""


class CheckpointMovedError(Exception):
    """Another reporter wrote ``metrics_pnl`` since this one read its state."""


def trade_from_event(
    position: int, aggregate_id: str, event_type: str, payload: str, recorded_at: str
) -> PnlTrade | None:
    """The P&L trade an event stands for, or None (not a trade, or nothing filled).

    Reads the few fields it needs straight from the JSON (the reporter and the
    dashboard fold whole logs with it); anything unexpected falls back to the
    full, validating event decoder.
    """
    if event_type not in TRADE_EVENTS:
        return None
    time = datetime.fromisoformat(recorded_at)
    data = json.loads(payload)
    try:
        if event_type == "FillRecorded":
            fill = data["fill"]
            return PnlTrade(
                position,
                str(fill["symbol"]),
                ONCHAIN,
                str(fill["trade_id"]),
                Direction(fill["direction"]),
                Decimal(fill["amount"]),
                Decimal(fill["price"]),
                time,
                datetime.fromisoformat(fill["block_timestamp"]),
            )
        filled = Decimal(data["filled_quantity"])
        price = data["average_price"]
        cid = str(data["client_order_id"])
        side = Direction(data["side"])
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return _trade_from_decoded(position, aggregate_id, event_type, data, time)
    return _hedge_trade(position, aggregate_id, cid, side, filled, price, time)


def _hedge_trade(  # noqa: PLR0917 - the fields of one trade
    position: int,
    symbol: str,
    cid: str,
    side: Direction,
    filled: Decimal,
    price: Any,
    time: datetime,
) -> PnlTrade | None:
    if filled <= ZERO:
        return None
    average = None if price is None else Decimal(str(price))
    if average is None or not average.is_finite() or average <= ZERO:
        log.warning(
            "hedge %s filled %s with no price reported; it is left out of the P&L", cid, filled
        )
        return None
    return PnlTrade(position, symbol, BROKER, cid, side, filled, average, time)


def _trade_from_decoded(
    position: int, aggregate_id: str, event_type: str, data: Any, time: datetime
) -> PnlTrade | None:
    event = event_from_payload(event_type, data)
    if isinstance(event, FillRecorded):
        fill = event.fill
        return PnlTrade(
            position,
            fill.symbol.ticker,
            ONCHAIN,
            str(fill.trade_id),
            fill.direction,
            fill.amount,
            fill.price,
            time,
            fill.block_timestamp,
        )
    if isinstance(event, HedgeClosed):
        return _hedge_trade(
            position,
            aggregate_id,
            event.client_order_id,
            event.side,
            event.filled_quantity,
            event.average_price,
            time,
        )
    return None


async def read_trades(
    db: aiosqlite.Connection, after: int, limit: int = CHUNK
) -> tuple[list[PnlTrade], int]:
    """Trades in events after position ``after``; also the last position scanned.

    ``+aggregate_type`` keeps SQLite on the rowid range: with the primary-key
    index on ``aggregate_type`` it would scan and sort the whole log per chunk.
    """
    async with db.execute(
        "SELECT rowid, aggregate_id, event_type, payload, recorded_at FROM events "
        "WHERE rowid > ? AND +aggregate_type = 'Position' AND event_type IN (?, ?) "
        "ORDER BY rowid LIMIT ?",
        (after, *TRADE_EVENTS, limit),
    ) as cur:
        rows = await cur.fetchall()
    trades = []
    last = after
    for rowid, agg_id, event_type, payload, recorded in rows:
        last = int(rowid)
        trade = trade_from_event(int(rowid), str(agg_id), event_type, payload, recorded)
        if trade is not None:
            trades.append(trade)
    return trades, last


def row_values(row: PnlRow) -> tuple[Any, ...]:
    t = row.trade
    return (
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


def row_to_json(values: Sequence[Any]) -> dict[str, Any]:
    """One ``metrics_pnl`` row as the stable JSON shape (decimals as strings)."""
    keys = (
        "position",
        "symbol",
        "time",
        "trade_time",
        "venue",
        "trade_id",
        "direction",
        "quantity",
        "price",
        "matched_quantity",
        "realized_pnl",
        "cumulative_pnl",
        "net_position_after",
    )
    return dict(zip(keys, values, strict=True))


def summary_to_json(summary: SymbolSummary) -> dict[str, Any]:
    def opt(value: Decimal | None) -> str | None:
        return None if value is None else fmt(value)

    spread = summary.average_spread
    return {
        "symbol": summary.symbol,
        "realized_pnl": fmt(summary.realized),
        "volume_shares": fmt(summary.volume_shares),
        "volume_usd": fmt(summary.volume_usd),
        "trades": summary.trades_onchain + summary.trades_broker,
        "trades_onchain": summary.trades_onchain,
        "trades_broker": summary.trades_broker,
        "matched_shares": fmt(summary.matched),
        "open_position": opt(summary.net_position),
        "average_cost": opt(None if summary.average_cost is None else _round(summary.average_cost)),
        "average_spread": opt(None if spread is None else _round(spread)),
    }


def _round(value: Decimal) -> Decimal:
    """Averages are quotients: show them to 1e-9 (the sums they come from stay exact)."""
    return value.quantize(Decimal("1e-9"))


@attrs.define
class PnlReporter:
    """Keeps ``metrics_pnl`` up to date on one connection (the reporter's own)."""

    db: aiosqlite.Connection
    book: PnlBook | None = None

    async def checkpoint(self) -> int:
        async with self.db.execute(
            "SELECT position FROM metrics_pnl_checkpoint WHERE id = 1"
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def load(self) -> PnlBook:
        """The persisted book (lots, cumulative P&L, checkpoint)."""
        lots: dict[str, list[PnlLot]] = {}
        async with self.db.execute(
            "SELECT symbol, direction, quantity, price, opened_by FROM metrics_pnl_lots "
            "ORDER BY symbol, seq"
        ) as cur:
            async for symbol, direction, qty, price, opened_by in cur:
                lots.setdefault(symbol, []).append(
                    PnlLot(Direction(direction), Decimal(qty), Decimal(price), opened_by)
                )
        cumulative: dict[str, Decimal] = {}
        last: dict[str, int] = {}
        async with self.db.execute(
            "SELECT symbol, cumulative_pnl, last_position FROM metrics_pnl_symbols"
        ) as cur:
            async for symbol, cum, position in cur:
                cumulative[symbol] = Decimal(cum)
                last[symbol] = int(position)
        return PnlBook.restore(await self.checkpoint(), lots, cumulative, last)

    async def step(self, limit: int = CHUNK) -> int:
        """Process up to ``limit`` events past the checkpoint; returns the rows written."""
        if self.book is None:
            self.book = await self.load()
        book = self.book
        start = book.checkpoint
        trades, last = await read_trades(self.db, start, limit)
        if last == start:
            return 0
        rows = [book.apply(t) for t in trades]
        book.advance(last)
        try:
            await self._write(start, rows, {r.trade.symbol for r in rows}, book)
        except BaseException:
            self.book = None  # reload the persisted state next time
            raise
        return len(rows)

    async def catch_up(self) -> int:
        """Process everything committed so far; returns the rows written."""
        total = 0
        while True:
            before = self.book.checkpoint if self.book is not None else None
            written = await self.step()
            total += written
            if self.book is None or self.book.checkpoint == before:
                return total

    async def _write(
        self, expected: int, rows: Sequence[PnlRow], symbols: Iterable[str], book: PnlBook
    ) -> None:
        db = self.db
        now = datetime.now(UTC).isoformat()
        await db.execute("BEGIN IMMEDIATE")
        try:
            if await self.checkpoint() != expected:
                raise CheckpointMovedError(
                    "metrics_pnl was advanced by another reporter; reloading its state"
                )
            await db.executemany(
                "INSERT INTO metrics_pnl VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [row_values(r) for r in rows],
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
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def rebuild(self) -> int:
        """Empty ``metrics_pnl`` and its state, then process the whole log again."""
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            for table in (
                "metrics_pnl",
                "metrics_pnl_lots",
                "metrics_pnl_symbols",
                "metrics_pnl_checkpoint",
            ):
                await db.execute(f"DELETE FROM {table}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        self.book = PnlBook()
        return await self.catch_up()

    async def rows(self, symbol: str | None = None) -> list[tuple[Any, ...]]:
        sql = "SELECT * FROM metrics_pnl"
        params: tuple[Any, ...] = ()
        if symbol:
            sql += " WHERE symbol = ?"
            params = (symbol,)
        async with self.db.execute(sql + " ORDER BY position", params) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def summary(self) -> list[SymbolSummary]:
        """Per-symbol and total figures from the stored rows and the persisted lots."""
        book = await self.load()
        rows = []
        for values in await self.rows():
            rows.append(
                PnlRow(
                    PnlTrade(
                        int(values[0]),
                        values[1],
                        values[4],
                        values[5],
                        Direction(values[6]),
                        Decimal(values[7]),
                        Decimal(values[8]),
                        datetime.fromisoformat(values[2]),
                        datetime.fromisoformat(values[3]),
                    ),
                    Decimal(values[9]),
                    None if values[10] is None else Decimal(values[10]),
                    Decimal(values[11]),
                    Decimal(values[12]),
                )
            )
        return summarize(rows, book)

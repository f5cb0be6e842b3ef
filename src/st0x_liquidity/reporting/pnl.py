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
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from ..domain.events import FillRecorded, HedgeClosed
from ..domain.fills import Direction
from ..domain.numbers import ZERO, fmt
from ..domain.pnl import (
    BROKER,
    ONCHAIN,
    PnlBook,
    PnlTrade,
    SymbolSummary,
    summarize,
)
from ..store.codec import event_from_payload
from ..store.pnl_tables import (
    CheckpointMovedError,
    PnlRecord,
    PnlTables,
    pnl_record,
    pnl_tables,
)
from ..store.read_models import PnlInputs

if TYPE_CHECKING:
    from ..store.postgres import PostgresStore
    from ..store.sqlite import SqliteStore

__all__ = ["CheckpointMovedError", "PnlReporter", "read_trades", "row_values", "trade_from_event"]

log = logging.getLogger(__name__)

TRADE_EVENTS = ("FillRecorded", "HedgeClosed")
CHUNK = 1000
"""Trades per increment: each is one write transaction, kept short so the bot's
commits on the same file wait little for the lock (5,000 held it ~5x longer)."""


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
    reads: PnlInputs, after: int, limit: int = CHUNK
) -> tuple[list[PnlTrade], int]:
    """Trades in events after position ``after``; also the last position scanned."""
    trades = []
    last = after
    for event in await reads.trade_events(after, limit):
        last = event.position
        trade = trade_from_event(
            event.position, event.aggregate_id, event.event_type, event.payload, event.recorded_at
        )
        if trade is not None:
            trades.append(trade)
    return trades, last


row_values = pnl_record
"""How a matched trade is stored in ``metrics_pnl`` (kept here for the reporter's callers)."""


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
    """Keeps ``metrics_pnl`` up to date: reads the log, writes only its own tables."""

    reads: PnlInputs
    tables: PnlTables
    book: PnlBook | None = None

    @classmethod
    def on(cls, store: SqliteStore | PostgresStore) -> PnlReporter:
        """The reporter over an open store (its reader connection, the reporter's own)."""
        return cls(store.reads, pnl_tables(store))

    async def checkpoint(self) -> int:
        return await self.tables.checkpoint()

    async def load(self) -> PnlBook:
        """The persisted book (lots, cumulative P&L, checkpoint)."""
        return await self.tables.load_book()

    async def step(self, limit: int = CHUNK) -> int:
        """Process up to ``limit`` events past the checkpoint; returns the rows written."""
        if self.book is None:
            self.book = await self.load()
        book = self.book
        start = book.checkpoint
        trades, last = await read_trades(self.reads, start, limit)
        if last == start:
            return 0
        rows = [book.apply(t) for t in trades]
        book.advance(last)
        try:
            await self.tables.write(start, rows, {r.trade.symbol for r in rows}, book)
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

    async def rebuild(self) -> int:
        """Empty ``metrics_pnl`` and its state, then process the whole log again."""
        await self.tables.clear()
        self.book = PnlBook()
        return await self.catch_up()

    async def rows(self, symbol: str | None = None) -> list[PnlRecord]:
        return await self.tables.records(symbol)

    async def summary(self) -> list[SymbolSummary]:
        """Per-symbol and total figures from the stored rows and the persisted lots."""
        book = await self.load()
        return summarize([r.to_row() for r in await self.rows()], book)

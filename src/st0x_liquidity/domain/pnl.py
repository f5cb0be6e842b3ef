"""Realized P&L by FIFO lot matching, across both venues (pure, no I/O).

Onchain fills and filled hedge orders are trades of one inventory per base
symbol (``tAAPL`` onchain and ``AAPL`` at the broker share a book). A trade
against open lots of the opposite sign realizes ``(sell price − buy price) ×
matched quantity`` for each lot it closes, oldest first; what remains opens a
new lot in the trade's direction (the position reverses).

Trades are processed in the order of their ``position`` (the event log's global
position), never by timestamp, so a trade that becomes known later always comes
after everything already processed and no two trades tie.

All arithmetic is exact (:data:`~st0x_liquidity.domain.numbers.EXACT` raises
rather than rounds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

import attrs

from .fills import Direction
from .numbers import EXACT, WIDE, ZERO

ONCHAIN = "onchain"
BROKER = "broker"
VENUES = (ONCHAIN, BROKER)


class PnlError(ValueError):
    """A trade the matcher cannot take (non-positive quantity/price, out of order)."""


@attrs.frozen
class PnlTrade:
    """One trade of the inventory: an onchain fill or (the filled part of) a hedge order."""

    position: int
    symbol: str
    venue: str
    trade_id: str
    direction: Direction
    quantity: Decimal
    price: Decimal
    time: datetime
    """When the bot recorded the trade (the event's commit time)."""
    trade_time: datetime | None = None
    """When it happened at its venue (block time onchain); None when only ``time`` is known."""


@attrs.frozen
class PnlLot:
    """Open inventory: ``quantity`` shares bought (BUY) or sold short (SELL) at ``price``."""

    direction: Direction
    quantity: Decimal
    price: Decimal
    opened_by: str = ""


@attrs.frozen
class PnlRow:
    """What one trade did to its symbol's book.

    ``realized`` is None when the trade only opened or added to a position (it
    closed nothing); otherwise the sum over the lots it closed, which may be 0 or
    negative. ``matched`` is the quantity that closed lots.
    """

    trade: PnlTrade
    matched: Decimal
    realized: Decimal | None
    cumulative: Decimal
    net_after: Decimal


@attrs.define
class SymbolPnl:
    """FIFO book of one symbol."""

    symbol: str
    lots: deque[PnlLot] = attrs.field(factory=deque)
    cumulative: Decimal = ZERO
    last_position: int = 0

    net: Decimal = attrs.field(init=False, default=ZERO)
    """Signed open position (kept up to date as lots change)."""

    def __attrs_post_init__(self) -> None:
        total = ZERO
        for lot in self.lots:
            total = EXACT.add(
                total,
                lot.quantity if lot.direction is Direction.BUY else lot.quantity.copy_negate(),
            )
        self.net = total

    @property
    def open_quantity(self) -> Decimal:
        return self.net.copy_abs()

    @property
    def average_cost(self) -> Decimal | None:
        """Quantity-weighted price of the open lots (None when flat)."""
        qty = ZERO
        cost = ZERO
        for lot in self.lots:
            qty = EXACT.add(qty, lot.quantity)
            cost = EXACT.add(cost, EXACT.multiply(lot.quantity, lot.price))
        if qty.is_zero():
            return None
        return WIDE.divide(cost, qty)

    def apply(self, trade: PnlTrade) -> PnlRow:
        if trade.symbol != self.symbol:
            raise PnlError(f"trade of {trade.symbol} applied to the {self.symbol} book")
        if not trade.quantity.is_finite() or trade.quantity <= ZERO:
            raise PnlError(f"trade {trade.trade_id}: quantity must be positive")
        if not trade.price.is_finite() or trade.price <= ZERO:
            raise PnlError(f"trade {trade.trade_id}: price must be positive")
        if trade.position <= self.last_position:
            raise PnlError(
                f"trade {trade.trade_id} at position {trade.position} is not after "
                f"{self.last_position}: each trade is processed once, in log order"
            )
        remaining = trade.quantity
        realized: Decimal | None = None
        matched = ZERO
        while remaining > ZERO and self.lots and self.lots[0].direction is not trade.direction:
            lot = self.lots[0]
            take = min(remaining, lot.quantity)
            # A BUY lot closed by a sale earns (sale − cost); a SELL lot closed by a
            # purchase earns (short price − purchase price).
            spread = (
                EXACT.subtract(trade.price, lot.price)
                if lot.direction is Direction.BUY
                else EXACT.subtract(lot.price, trade.price)
            )
            realized = EXACT.add(realized or ZERO, EXACT.multiply(spread, take))
            matched = EXACT.add(matched, take)
            remaining = EXACT.subtract(remaining, take)
            left = EXACT.subtract(lot.quantity, take)
            if left.is_zero():
                self.lots.popleft()
            else:
                self.lots[0] = attrs.evolve(lot, quantity=left)
        if remaining > ZERO:
            self.lots.append(PnlLot(trade.direction, remaining, trade.price, trade.trade_id))
        signed = (
            trade.quantity if trade.direction is Direction.BUY else trade.quantity.copy_negate()
        )
        self.net = EXACT.add(self.net, signed)
        if realized is not None:
            self.cumulative = EXACT.add(self.cumulative, realized)
        self.last_position = trade.position
        return PnlRow(trade, matched, realized, self.cumulative, self.net)


@attrs.define
class PnlBook:
    """FIFO books of every symbol; the whole state an incremental reporter keeps."""

    symbols: dict[str, SymbolPnl] = attrs.field(factory=dict)
    checkpoint: int = 0

    def apply(self, trade: PnlTrade) -> PnlRow:
        if trade.position <= self.checkpoint:
            raise PnlError(
                f"trade {trade.trade_id} at position {trade.position} is at or before the "
                f"checkpoint {self.checkpoint}"
            )
        book = self.symbols.get(trade.symbol)
        if book is None:
            book = self.symbols[trade.symbol] = SymbolPnl(trade.symbol)
        row = book.apply(trade)
        self.checkpoint = trade.position
        return row

    def apply_all(self, trades: Iterable[PnlTrade]) -> list[PnlRow]:
        return [self.apply(t) for t in sorted(trades, key=lambda t: t.position)]

    def advance(self, position: int) -> None:
        """Move the checkpoint past log positions that held no trade."""
        self.checkpoint = max(self.checkpoint, position)

    @classmethod
    def restore(
        cls,
        checkpoint: int,
        lots: Mapping[str, Iterable[PnlLot]],
        cumulative: Mapping[str, Decimal],
        last_positions: Mapping[str, int] | None = None,
    ) -> PnlBook:
        symbols = {}
        for symbol in set(lots) | set(cumulative):
            symbols[symbol] = SymbolPnl(
                symbol,
                deque(lots.get(symbol, ())),
                cumulative.get(symbol, ZERO),
                (last_positions or {}).get(symbol, 0),
            )
        return cls(symbols, checkpoint)


def match_fifo(trades: Iterable[PnlTrade]) -> list[PnlRow]:
    """One pass over ``trades`` (in log order) from an empty book."""
    return PnlBook().apply_all(trades)


@attrs.frozen
class SymbolSummary:
    """Totals of one symbol (or of all, with ``symbol == "TOTAL"``)."""

    symbol: str
    realized: Decimal
    volume_shares: Decimal
    volume_usd: Decimal
    trades_onchain: int
    trades_broker: int
    matched: Decimal
    net_position: Decimal | None
    average_cost: Decimal | None

    @property
    def average_spread(self) -> Decimal | None:
        """Realized P&L per matched share (None before anything closed)."""
        if self.matched.is_zero():
            return None
        return WIDE.divide(self.realized, self.matched)


@attrs.define
class PnlTotals:
    """Running totals of one symbol's rows (for summaries without keeping the rows)."""

    realized: Decimal = ZERO
    shares: Decimal = ZERO
    usd: Decimal = ZERO
    matched: Decimal = ZERO
    onchain: int = 0
    broker: int = 0

    def add_row(self, row: PnlRow) -> None:
        t = row.trade
        self.realized = EXACT.add(self.realized, row.realized or ZERO)
        self.shares = EXACT.add(self.shares, t.quantity)
        self.usd = EXACT.add(self.usd, EXACT.multiply(t.quantity, t.price))
        self.matched = EXACT.add(self.matched, row.matched)
        if t.venue == ONCHAIN:
            self.onchain += 1
        else:
            self.broker += 1

    def add(self, other: PnlTotals) -> None:
        self.realized = EXACT.add(self.realized, other.realized)
        self.shares = EXACT.add(self.shares, other.shares)
        self.usd = EXACT.add(self.usd, other.usd)
        self.matched = EXACT.add(self.matched, other.matched)
        self.onchain += other.onchain
        self.broker += other.broker


def summarize(rows: Iterable[PnlRow], book: PnlBook | None = None) -> list[SymbolSummary]:
    """Per-symbol totals, sorted by symbol, followed by a ``TOTAL`` line.

    ``book`` (the state after the rows) supplies the open position and its
    average cost; without it the position is the last row's and the cost unknown.
    """
    acc: dict[str, PnlTotals] = {}
    last_net: dict[str, Decimal] = {}
    for row in rows:
        acc.setdefault(row.trade.symbol, PnlTotals()).add_row(row)
        last_net[row.trade.symbol] = row.net_after
    return summarize_totals(acc, book, last_net)


def summarize_totals(
    acc: Mapping[str, PnlTotals],
    book: PnlBook | None = None,
    last_net: Mapping[str, Decimal] | None = None,
) -> list[SymbolSummary]:
    """:func:`summarize` from running totals per symbol."""
    result: list[SymbolSummary] = []
    total = PnlTotals()
    for symbol in sorted(acc):
        a = acc[symbol]
        sym_book = book.symbols.get(symbol) if book is not None else None
        net = sym_book.net if sym_book is not None else (last_net or {}).get(symbol)
        result.append(
            SymbolSummary(
                symbol=symbol,
                realized=a.realized,
                volume_shares=a.shares,
                volume_usd=a.usd,
                trades_onchain=a.onchain,
                trades_broker=a.broker,
                matched=a.matched,
                net_position=net,
                average_cost=sym_book.average_cost if sym_book is not None else None,
            )
        )
        total.add(a)
    result.append(
        SymbolSummary(
            symbol="TOTAL",
            realized=total.realized,
            volume_shares=total.shares,
            volume_usd=total.usd,
            trades_onchain=total.onchain,
            trades_broker=total.broker,
            matched=total.matched,
            net_position=None,
            average_cost=None,
        )
    )
    return result


# -- extended-hours limits: slippage against the onchain fill ----------------------


@attrs.frozen
class LimitSlippage:
    """What limit hedges of one symbol paid against the onchain fills they covered.

    ``usd`` is positive for a cost: a SELL hedge filled below the onchain price
    it covers, a BUY hedge above it. ``bps`` is weighted by notional.
    """

    symbol: str
    orders: int = 0
    shares: Decimal = ZERO
    usd: Decimal = ZERO
    notional: Decimal = ZERO

    @property
    def bps(self) -> Decimal | None:
        if self.notional.is_zero():
            return None
        return WIDE.divide(EXACT.multiply(self.usd, Decimal(10_000)), self.notional)

    def add(
        self, side: Direction, filled: Decimal, average_price: Decimal, onchain_price: Decimal
    ) -> LimitSlippage:
        """This plus one limit hedge that filled ``filled`` at ``average_price``."""
        per_share = EXACT.subtract(onchain_price, average_price)
        if side is Direction.BUY:
            per_share = per_share.copy_negate()
        return attrs.evolve(
            self,
            orders=self.orders + 1,
            shares=EXACT.add(self.shares, filled),
            usd=EXACT.add(self.usd, EXACT.multiply(per_share, filled)),
            notional=EXACT.add(self.notional, EXACT.multiply(onchain_price, filled)),
        )


def limit_slippage(
    hedges: Iterable[tuple[str, Direction, Decimal, Decimal | None, Decimal | None]],
) -> dict[str, LimitSlippage]:
    """Per symbol, from ``(symbol, side, filled, average_price, onchain_price)`` of limit
    hedges; unfilled ones (or without prices) count for nothing."""
    result: dict[str, LimitSlippage] = {}
    for symbol, side, filled, average, onchain in hedges:
        if filled <= ZERO or average is None or onchain is None:
            continue
        current = result.get(symbol) or LimitSlippage(symbol)
        result[symbol] = current.add(side, filled, average, onchain)
    return result

"""FIFO P&L matcher: the reference's worked examples and hypothesis properties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.numbers import ZERO, fmt
from st0x_liquidity.domain.pnl import (
    BROKER,
    ONCHAIN,
    PnlBook,
    PnlError,
    PnlTrade,
    match_fifo,
    summarize,
)

T0 = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)
BUY, SELL = Direction.BUY, Direction.SELL


def trade(
    n: int, direction: Direction, qty: str, price: str, venue: str = ONCHAIN, symbol: str = "AAPL"
) -> PnlTrade:
    return PnlTrade(n, symbol, venue, f"t{n}", direction, Decimal(qty), Decimal(price), T0)


def opt(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


def test_worked_example_across_venues() -> None:
    """reference/hedging.md §3.5: onchain fills hedged whole-share at the broker."""
    trades = [
        trade(1, SELL, "0.3", "150.00"),
        trade(2, SELL, "0.5", "151.00"),
        trade(3, SELL, "0.4", "152.00"),
        trade(4, BUY, "1", "148.50", BROKER),
        trade(5, BUY, "0.5", "149.00"),
        trade(6, BUY, "0.9", "150.25"),
        trade(7, SELL, "1", "151.10", BROKER),
    ]
    rows = match_fifo(trades)
    assert [opt(r.realized) for r in rows] == [None, None, None, "2.4", "0.6", None, "1.225"]
    assert [opt(r.cumulative) for r in rows] == ["0", "0", "0", "2.4", "3", "3", "4.225"]
    assert [opt(r.net_after) for r in rows] == ["-0.3", "-0.8", "-1.2", "-0.2", "0.3", "1.2", "0.2"]


def test_tokenized_and_base_symbol_share_a_book() -> None:
    """Trades are keyed by base symbol: an onchain sell and its broker buy realize the spread."""
    book = PnlBook()
    book.apply(trade(1, SELL, "2", "101", ONCHAIN, "AAPL"))
    row = book.apply(trade(2, BUY, "2", "100", BROKER, "AAPL"))
    assert row.realized == Decimal("2")
    assert row.net_after == ZERO


def test_seven_step_example() -> None:
    """The reference repo's own 7-step test."""
    steps = [
        (BUY, "100", "10"),
        (BUY, "50", "12"),
        (SELL, "80", "11"),
        (SELL, "60", "9.5"),
        (BUY, "30", "12.2"),
        (SELL, "70", "12"),
        (BUY, "20", "11.5"),
    ]
    rows = match_fifo(trade(i + 1, d, q, p) for i, (d, q, p) in enumerate(steps))
    assert [opt(r.realized) for r in rows] == [None, None, "80", "-110", None, "-6", "10"]
    assert [opt(r.cumulative) for r in rows] == ["0", "0", "80", "-30", "-30", "-36", "-26"]
    assert [opt(r.net_after) for r in rows] == ["100", "150", "70", "10", "40", "-30", "-10"]


def test_rejects_bad_trades_and_replays() -> None:
    book = PnlBook()
    with pytest.raises(PnlError):
        book.apply(trade(1, BUY, "0", "10"))
    with pytest.raises(PnlError):
        book.apply(trade(1, BUY, "1", "-1"))
    book.apply(trade(5, BUY, "1", "10"))
    with pytest.raises(PnlError):
        book.apply(trade(5, SELL, "1", "10"))  # same log position twice
    with pytest.raises(PnlError):
        book.apply(trade(3, SELL, "1", "10"))  # earlier position: never re-processed


def test_summary() -> None:
    rows = match_fifo(
        [
            trade(1, SELL, "2", "101"),
            trade(2, BUY, "2", "100", BROKER),
            trade(3, BUY, "1", "50", ONCHAIN, "TSLA"),
        ]
    )
    book = PnlBook()
    book.apply_all(
        [
            trade(1, SELL, "2", "101"),
            trade(2, BUY, "2", "100", BROKER),
            trade(3, BUY, "1", "50", ONCHAIN, "TSLA"),
        ]
    )
    aapl, tsla, total = summarize(rows, book)
    assert aapl.symbol == "AAPL" and aapl.realized == Decimal(2)
    assert aapl.trades_onchain == 1 and aapl.trades_broker == 1
    assert aapl.volume_usd == Decimal(402)
    assert aapl.average_spread == Decimal(1)
    assert aapl.net_position == 0 and aapl.average_cost is None
    assert tsla.net_position == 1 and tsla.average_cost == Decimal(50)
    assert tsla.average_spread is None
    assert total.symbol == "TOTAL" and total.realized == Decimal(2)
    assert total.trades_onchain == 2 and total.volume_shares == Decimal(5)


# -- properties ------------------------------------------------------------------------

quantities = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal("1000"), places=6, allow_nan=False
)
prices = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("5000"), places=4, allow_nan=False
)
symbols = st.sampled_from(["AAPL", "TSLA", "NVDA"])
raw_trades = st.lists(
    st.tuples(
        symbols,
        st.sampled_from([BUY, SELL]),
        quantities,
        prices,
        st.sampled_from((ONCHAIN, BROKER)),
    ),
    max_size=60,
)


def build(raw: list[tuple[str, Direction, Decimal, Decimal, str]]) -> list[PnlTrade]:
    return [
        PnlTrade(i + 1, s, v, f"t{i + 1}", d, q, p, T0) for i, (s, d, q, p, v) in enumerate(raw)
    ]


@given(quantities, prices, prices, st.sampled_from([BUY, SELL]))
def test_round_trip_realizes_spread_times_quantity(
    qty: Decimal, p_open: Decimal, p_close: Decimal, first: Direction
) -> None:
    rows = match_fifo(
        [trade(1, first, str(qty), str(p_open)), trade(2, first.opposite, str(qty), str(p_close))]
    )
    sell, buy = (p_open, p_close) if first is SELL else (p_close, p_open)
    assert rows[0].realized is None
    assert rows[1].realized == (sell - buy) * qty
    assert rows[1].net_after == 0
    assert rows[1].cumulative == rows[1].realized


@settings(max_examples=150)
@given(raw_trades, st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_one_pass_equals_many_increments(
    raw: list[tuple[str, Direction, Decimal, Decimal, str]], cuts: list[int]
) -> None:
    trades = build(raw)
    whole = match_fifo(trades)
    # Increments: after each chunk, persist the state as a reporter would (lots,
    # cumulative, checkpoint) and restore it into a fresh book.
    rows = []
    book = PnlBook()
    bounds = sorted({0, len(trades), *(c for c in cuts if c <= len(trades))})
    for start, end in itertools.pairwise(bounds):
        book = PnlBook.restore(
            book.checkpoint,
            {s: list(b.lots) for s, b in book.symbols.items()},
            {s: b.cumulative for s, b in book.symbols.items()},
            {s: b.last_position for s, b in book.symbols.items()},
        )
        rows.extend(book.apply_all(trades[start:end]))
    assert rows == whole


@settings(max_examples=150)
@given(raw_trades)
def test_net_after_each_row_is_the_running_sum(
    raw: list[tuple[str, Direction, Decimal, Decimal, str]],
) -> None:
    rows = match_fifo(build(raw))
    net: dict[str, Decimal] = {}
    cumulative: dict[str, Decimal] = {}
    for row in rows:
        t = row.trade
        net[t.symbol] = net.get(t.symbol, ZERO) + t.quantity * t.direction.sign
        cumulative[t.symbol] = cumulative.get(t.symbol, ZERO) + (row.realized or ZERO)
        assert row.net_after == net[t.symbol]
        assert row.cumulative == cumulative[t.symbol]
        assert ZERO <= row.matched <= t.quantity
        assert (row.realized is None) == (row.matched == 0)


@settings(max_examples=100)
@given(raw_trades)
def test_total_pnl_when_flat_equals_cash_flow(
    raw: list[tuple[str, Direction, Decimal, Decimal, str]],
) -> None:
    """Closing every symbol at a price: realized P&L = Σ sell cash − Σ buy cash."""
    trades = build(raw)
    book = PnlBook()
    rows = book.apply_all(trades)
    n = len(trades)
    for symbol, sym in sorted(book.symbols.items()):
        net = sym.net
        if net != 0:
            n += 1
            close = PnlTrade(
                n, symbol, BROKER, f"c{n}", SELL if net > 0 else BUY, abs(net), Decimal(100), T0
            )
            trades.append(close)
            rows.append(book.apply(close))
    for symbol in book.symbols:
        cash = sum(
            (t.quantity * t.price * -t.direction.sign for t in trades if t.symbol == symbol), ZERO
        )
        realized = sum((r.realized or ZERO for r in rows if r.trade.symbol == symbol), ZERO)
        assert realized == cash

"""Property tests of the FIFO accumulator: every share explained, conservation holds."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from st0x_liquidity.domain.accumulator import (
    AccumulatorError,
    SymbolBook,
    decide_hedge,
)
from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.domain.orders import OrderRules
from st0x_liquidity.domain.symbols import Symbol

AAPL = Symbol("AAPL")
T0 = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


def fill(n: int, direction: Direction, amount: str, price: str = "100") -> Fill:
    return Fill(TradeId(f"0x{n:064x}", 0), AAPL, direction, Decimal(amount), Decimal(price), n, T0)


class Ledger:
    """Independent bookkeeping of what each fill's shares became."""

    def __init__(self) -> None:
        self.amount: dict[TradeId, Decimal] = {}
        self.netted: dict[TradeId, Decimal] = defaultdict(Decimal)
        self.hedged: dict[TradeId, Decimal] = defaultdict(Decimal)
        self.buys = Decimal(0)
        self.sells = Decimal(0)
        self.hedge_buys = Decimal(0)
        self.hedge_sells = Decimal(0)

    def check(self, book: SymbolBook) -> None:
        open_by_trade: dict[TradeId, Decimal] = defaultdict(Decimal)
        for lot in book.lots:
            assert lot.open > 0, "no lot may be empty or negative"
            open_by_trade[lot.trade_id] += lot.open
        directions = {lot.direction for lot in book.lots}
        assert len(directions) <= 1, "open lots are all of one direction"
        reserved: dict[TradeId, Decimal] = defaultdict(Decimal)
        if book.in_flight is not None:
            for alloc in book.in_flight.reserved:
                assert alloc.quantity > 0
                reserved[alloc.trade_id] += alloc.quantity
        for trade_id, amount in self.amount.items():
            explained = (
                self.netted[trade_id]
                + self.hedged[trade_id]
                + open_by_trade[trade_id]
                + reserved[trade_id]
            )
            assert explained == amount, f"{trade_id}: {explained} != {amount}"
        conservation = self.buys - self.sells - self.hedge_sells + self.hedge_buys
        assert conservation == book.net


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("fill"),
            st.sampled_from([Direction.BUY, Direction.SELL]),
            st.decimals(min_value=Decimal("0.001"), max_value=Decimal(50), places=3),
        ),
        st.tuples(st.just("hedge"), st.booleans(), st.just(Decimal(0))),
        st.tuples(
            st.sampled_from(["fill_all", "fail", "partial", "partial_cancel"]),
            st.just(Direction.BUY),
            st.integers(min_value=0, max_value=100).map(Decimal),
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_every_share_is_explained_and_conservation_holds(
    sequence: list[tuple[str, object, Decimal]],
) -> None:
    book = SymbolBook(AAPL)
    ledger = Ledger()
    n = 0
    for op, arg, value in sequence:
        if op == "fill":
            assert isinstance(arg, Direction)
            n += 1
            f = fill(n, arg, str(value))
            ledger.amount[f.trade_id] = f.amount
            if arg is Direction.BUY:
                ledger.buys += f.amount
            else:
                ledger.sells += f.amount
            for netting in book.apply_fill(f):
                ledger.netted[netting.older] += netting.quantity
                ledger.netted[netting.newer] += netting.quantity
        elif op == "hedge":
            rules = (
                OrderRules.whole_shares() if arg else OrderRules.fractional_shares(2, Decimal(1))
            )
            decision = book.decide(rules)
            if decision is not None:
                assert decision.quantity <= abs(book.open_net)
                assert (decision.side is Direction.SELL) == (book.open_net > 0)
                book.reserve(decision, f"h{book.hedges_placed}")
        elif book.in_flight is not None:
            hedge = book.in_flight
            fraction = value / 100
            filled_total = {
                "fill_all": hedge.quantity,
                "fail": hedge.filled,
                "partial": hedge.filled
                + (hedge.unfilled * fraction).quantize(Decimal("0.001"), rounding="ROUND_DOWN"),
                "partial_cancel": hedge.filled
                + (hedge.unfilled * fraction).quantize(Decimal("0.001"), rounding="ROUND_DOWN"),
            }[op]
            if op == "partial":
                settlement = book.progress(hedge.client_order_id, filled_total)
            else:
                settlement = book.finish(hedge.client_order_id, filled_total)
            for alloc in settlement.hedged:
                ledger.hedged[alloc.trade_id] += alloc.quantity
                if hedge.side is Direction.SELL:
                    ledger.hedge_sells += alloc.quantity
                else:
                    ledger.hedge_buys += alloc.quantity
            for netting in settlement.nettings:
                ledger.netted[netting.older] += netting.quantity
                ledger.netted[netting.newer] += netting.quantity
        ledger.check(book)


def test_worked_example_from_the_reference() -> None:
    """Reference §3.5, hedging side: BUY 1 after -1.2, SELL 1 after +1.2."""
    book = SymbolBook(AAPL)
    rules = OrderRules.whole_shares()
    book.apply_fill(fill(1, Direction.SELL, "0.3", "150"))
    book.apply_fill(fill(2, Direction.SELL, "0.5", "151"))
    assert book.decide(rules) is None
    book.apply_fill(fill(3, Direction.SELL, "0.4", "152"))
    decision = book.decide(rules)
    assert decision is not None and decision.side is Direction.BUY and decision.quantity == 1
    reserved = book.reserve(decision, "h1")
    assert [(a.trade_id.tx_hash[-1], a.quantity) for a in reserved] == [
        ("1", Decimal("0.3")),
        ("2", Decimal("0.5")),
        ("3", Decimal("0.2")),
    ]
    settled = book.finish("h1", Decimal(1))
    assert sum(a.quantity for a in settled.hedged) == 1 and not settled.released
    assert book.net == Decimal("-0.2")
    nettings = book.apply_fill(fill(5, Direction.BUY, "0.5", "149"))
    assert [(n.older.tx_hash[-1], n.quantity) for n in nettings] == [("3", Decimal("0.2"))]
    assert book.net == Decimal("0.3")
    book.apply_fill(fill(6, Direction.BUY, "0.9", "150.25"))
    decision = book.decide(rules)
    assert decision is not None and decision.side is Direction.SELL and decision.quantity == 1


def test_partial_fill_then_cancel_only_returns_the_unfilled_part() -> None:
    """Seed weakness: a partially filled, then cancelled order was re-hedged in full."""
    book = SymbolBook(AAPL)
    book.apply_fill(fill(1, Direction.BUY, "10"))
    decision = book.decide(OrderRules.whole_shares())
    assert decision is not None
    book.reserve(decision, "h1")
    book.progress("h1", Decimal(4))
    settled = book.finish("h1", Decimal(4))
    assert sum(a.quantity for a in settled.released) == 6
    assert book.net == 6
    again = book.decide(OrderRules.whole_shares())
    assert again is not None and again.quantity == 6


def test_failed_hedge_does_not_block_the_next_one() -> None:
    """Seed weakness: links to a failed order kept the symbol from being hedged again."""
    book = SymbolBook(AAPL)
    book.apply_fill(fill(1, Direction.SELL, "3"))
    first = book.decide(OrderRules.whole_shares())
    assert first is not None
    book.reserve(first, "h1")
    book.finish("h1", Decimal(0))
    assert book.in_flight is None and book.net == -3
    second = book.decide(OrderRules.whole_shares())
    assert second == first
    book.reserve(second, "h2")


def test_one_hedge_in_flight_per_symbol() -> None:
    book = SymbolBook(AAPL)
    book.apply_fill(fill(1, Direction.BUY, "5"))
    decision = book.decide(OrderRules.whole_shares())
    assert decision is not None
    book.reserve(decision, "h1")
    book.apply_fill(fill(2, Direction.BUY, "5"))
    assert book.decide(OrderRules.whole_shares()) is None
    with pytest.raises(AccumulatorError):
        book.reserve(decision, "h2")


@pytest.mark.parametrize(
    ("net", "price", "rules", "expected"),
    [
        ("0.99", "100", OrderRules.whole_shares(), None),
        ("1.7", "100", OrderRules.whole_shares(), ("SELL", "1")),
        ("-2.5", "100", OrderRules.whole_shares(), ("BUY", "2")),
        ("0.0199", "100", OrderRules.fractional_shares(9, Decimal(2)), None),
        ("0.02", "100", OrderRules.fractional_shares(9, Decimal(2)), ("SELL", "0.02")),
        (
            "0.1234567891234",
            "100",
            OrderRules.fractional_shares(9, Decimal(2)),
            ("SELL", "0.123456789"),
        ),
        ("1", None, OrderRules.fractional_shares(9, Decimal(2)), None),
    ],
)
def test_decide_hedge_thresholds(
    net: str, price: str | None, rules: OrderRules, expected: tuple[str, str] | None
) -> None:
    decision = decide_hedge(Decimal(net), None if price is None else Decimal(price), rules)
    if expected is None:
        assert decision is None
    else:
        assert decision is not None
        assert (decision.side.value, decision.quantity) == (expected[0], Decimal(expected[1]))
        assert decision.quantity <= abs(Decimal(net))

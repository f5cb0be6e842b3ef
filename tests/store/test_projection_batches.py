"""The views do not depend on how events are grouped into commits.

The projection folds what a batch does to a trade it also inserts (nettings
as the older side, reservations, released shares) into the inserted row, and
sends the rest as deltas. Whatever the grouping, every trade's open quantity
must be what the book holds open for it, and the views must be the same.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.events import hedge_closed
from support.fills import fill
from support.postgres import PostgresServer
from support.stores import Store
from support.views import dump

from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.events import FillRecorded, HedgeIntended, NewEvent, position_event
from st0x_liquidity.domain.numbers import add, fmt
from st0x_liquidity.domain.orders import OrderRules
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.store.postgres import PostgresStore
from st0x_liquidity.store.sqlite import SqliteStore

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("fill"), st.sampled_from(["BUY", "SELL"]), st.integers(1, 400)),
        st.tuples(st.just("hedge")),
        st.tuples(st.just("finish"), st.sampled_from(["0", "0.5", "1"])),
    ),
    min_size=1,
    max_size=30,
)


def _events(ops: list[tuple[object, ...]]) -> tuple[SymbolBook, list[NewEvent]]:
    """Apply ``ops`` to a book; the events they record, skipping ops that do not apply."""
    book = SymbolBook(Symbol("AAPL"))
    events: list[NewEvent] = []
    hedges = 0
    for n, op in enumerate(ops, 1):
        if op[0] == "fill":
            f = fill(n, "tAAPL", str(op[1]), str(Decimal(int(str(op[2]))) / 100))
            events.append(position_event(f.symbol, FillRecorded(f, book.apply_fill(f))))
        elif op[0] == "hedge":
            decision = book.decide(OrderRules.whole_shares())
            if decision is None:
                continue
            hedges += 1
            cid = f"h-{hedges}"
            reserved = book.reserve(decision, cid)
            intent = HedgeIntended(cid, decision.side, decision.quantity, Decimal(100), reserved)
            events.append(position_event(book.symbol, intent))
        elif book.in_flight is not None:
            hedge = book.in_flight
            filled = hedge.quantity * Decimal(str(op[1]))
            settlement = book.finish(hedge.client_order_id, filled)
            price = Decimal(101) if filled else None
            events.append(
                hedge_closed(book, hedge.client_order_id, hedge.side, filled, price, settlement)
            )
    return book, events


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=_OPS, cuts=st.lists(st.booleans(), min_size=30, max_size=30))
async def test_any_grouping_gives_the_books_open_quantities_and_the_same_views(
    backend: str, request: pytest.FixtureRequest, ops: list[tuple[object, ...]], cuts: list[bool]
) -> None:
    def open_store(name: str) -> Store:
        if backend == "postgres":
            server: PostgresServer = request.getfixturevalue("postgres_server")
            return PostgresStore(server.new_database())
        return SqliteStore(Path(tmp) / name)

    book, events = _events(ops)
    groups: list[list[NewEvent]] = [[]]
    for event, cut in zip(events, cuts, strict=False):
        groups[-1].append(event)
        if cut:
            groups.append([])
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store("grouped.db") as grouped:
            for group in groups:
                if group:
                    await grouped.append(group)
            views = await dump(grouped, times=False)
            opens: dict[str, Decimal] = {}
            for lot in book.lots:
                opens[lot.trade_id.tx_hash] = add(
                    opens.get(lot.trade_id.tx_hash, Decimal(0)), lot.open
                )
            rows = await grouped.fetch("SELECT tx_hash, open_quantity FROM onchain_trades")
            assert {tx: q for tx, q in rows} == {
                tx: fmt(opens.get(tx, Decimal(0))) for tx, _ in rows
            }
        async with open_store("one_by_one.db") as single:
            for event in events:
                await single.append([event])
            assert await dump(single, times=False) == views

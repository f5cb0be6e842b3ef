"""A netting is stored once; readers see it from both sides, summed per pair."""

from __future__ import annotations

from decimal import Decimal

from support.events import hedge_closed
from support.fills import fill, tx
from support.stores import OpenStore

from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.events import FillRecorded, HedgeIntended, position_event
from st0x_liquidity.domain.orders import OrderRules
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.store.links import POSTGRES, SQLITE, links_of
from st0x_liquidity.store.postgres import PostgresStore


async def test_a_pair_that_netted_both_ways_reads_as_one_link_per_side(
    open_store: OpenStore,
) -> None:
    book = SymbolBook(Symbol("AAPL"))
    a = fill(1, "tAAPL", "BUY", "2.5")
    b = fill(2, "tAAPL", "SELL", "3")
    async with open_store() as store:
        await store.append([position_event(a.symbol, FillRecorded(a, book.apply_fill(a)))])
        decision = book.decide(OrderRules.whole_shares())
        assert decision is not None and decision.quantity == 2
        reserved = book.reserve(decision, "h-1")
        await store.append(
            [
                position_event(
                    book.symbol,
                    HedgeIntended("h-1", decision.side, decision.quantity, Decimal(100), reserved),
                )
            ]
        )
        # b nets the 0.5 of a left open (a older), then the hedge is cancelled
        # unfilled and a's 2 released shares net against b's open lot (b older).
        await store.append([position_event(b.symbol, FillRecorded(b, book.apply_fill(b)))])
        s = book.finish("h-1", Decimal(0))
        assert [(n.older, n.newer, n.quantity) for n in s.nettings] == [
            (b.trade_id, a.trade_id, Decimal(2))
        ]
        await store.append([hedge_closed(book, "h-1", decision.side, Decimal(0), None, s)])
        # Stored once, on the newer side, both fills named by onchain_trades.id
        # (a is 1, b is 2: ids follow arrival).
        ids = dict(await store.fetch("SELECT tx_hash, id FROM onchain_trades"))
        assert ids == {tx(1): 1, tx(2): 2}
        stored = await store.fetch(
            "SELECT trade, kind, counterpart, quantity FROM fill_allocations ORDER BY 1, 2, 3"
        )
        ref = str if isinstance(store, PostgresStore) else int  # counterpart's type there
        assert stored == [(1, "netted", ref(2), "2"), (2, "netted", ref(1), "0.5")]
        dialect = POSTGRES if isinstance(store, PostgresStore) else SQLITE
        links = await links_of(store.fetch, [(tx(1), 0), (tx(2), 0)], dialect=dialect)
        assert links == {
            (tx(1), 0): [("netted", f"{tx(2)}:0", "2.5")],
            (tx(2), 0): [("netted", f"{tx(1)}:0", "2.5")],
        }
        # The view shows every row from both sides.
        view = await store.fetch(
            "SELECT tx_hash, counterpart, quantity FROM fill_links ORDER BY 1, 3"
        )
        assert view == [
            (tx(1), f"{tx(2)}:0", "0.5"),
            (tx(1), f"{tx(2)}:0", "2"),
            (tx(2), f"{tx(1)}:0", "0.5"),
            (tx(2), f"{tx(1)}:0", "2"),
        ]
        # a is wholly netted (0.5 + 2); b netted 2.5 of its 3 and has 0.5 open.
        trades = await store.fetch("SELECT tx_hash, open_quantity FROM onchain_trades ORDER BY 1")
        assert trades == [(tx(1), "0"), (tx(2), "0.5")]

"""The read models against a real SQLite file written by the real store."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal

import psycopg
import pytest
from support.events import hedge_closed
from support.fills import fill, tx
from support.stores import OpenStore, Store

from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.events import (
    FILL_SOURCE,
    FillRecorded,
    HedgeIntended,
    InputSkipped,
    NewEvent,
    position_event,
)
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.orders import OrderRules, OrderState
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.errors import StoreError
from st0x_liquidity.store.read_connection import ReadConnection
from st0x_liquidity.store.read_models import (
    HedgeCoverage,
    Link,
    OpenLotView,
    PendingHedge,
    ReadModels,
)
from st0x_liquidity.store.sqlite import SqliteStore
from st0x_liquidity.store.sqlite_reads import SqliteReads


@pytest.fixture
async def store(open_store: OpenStore) -> AsyncIterator[Store]:
    """AAPL: buy 2.5, hedge h-1 (sell 2) in flight, then sell 1; TSLA: a filled hedge."""
    async with open_store() as store:
        aapl = SymbolBook(Symbol("AAPL"))
        a = fill(1, "tAAPL", "BUY", "2.5", "100")
        await store.append([position_event(a.symbol, FillRecorded(a, aapl.apply_fill(a)))])
        decision = aapl.decide(OrderRules.whole_shares())
        assert decision is not None
        reserved = aapl.reserve(decision, "h-1")
        await store.append(
            [
                position_event(
                    aapl.symbol,
                    HedgeIntended("h-1", decision.side, decision.quantity, Decimal(100), reserved),
                )
            ]
        )
        b = fill(2, "tAAPL", "SELL", "1", "101")
        await store.append([position_event(b.symbol, FillRecorded(b, aapl.apply_fill(b)))])

        tsla = SymbolBook(Symbol("TSLA"))
        c = fill(3, "tTSLA", "SELL", "1", "200")
        await store.append([position_event(c.symbol, FillRecorded(c, tsla.apply_fill(c)))])
        decision = tsla.decide(OrderRules.whole_shares())
        assert decision is not None
        reserved = tsla.reserve(decision, "h-2")
        await store.append(
            [
                position_event(
                    tsla.symbol,
                    HedgeIntended("h-2", decision.side, decision.quantity, Decimal(200), reserved),
                )
            ]
        )
        settled = tsla.finish("h-2", Decimal(1))
        await store.append(
            [
                hedge_closed(
                    tsla,
                    "h-2",
                    Direction.BUY,
                    Decimal(1),
                    Decimal("199.5"),
                    settled,
                    state=OrderState.FILLED,
                    reason=None,
                ),
                NewEvent(FILL_SOURCE, "replay", InputSkipped("bad json at line 7", "{")),
                NewEvent(FILL_SOURCE, "replay", InputSkipped("bad json at line 9", "[")),
            ]
        )
        yield store


async def test_positions_lots_trades_and_links(store: Store) -> None:
    reads: ReadModels = store.reads
    positions = await reads.positions()
    assert [p.symbol for p in positions] == ["AAPL", "TSLA"]
    aapl, tsla = positions
    assert aapl.net == "1.5"
    assert aapl.pending_hedge == PendingHedge("h-1", "SELL", "2", "0", "pending")
    assert tsla.pending_hedge is None
    assert [p.symbol for p in await reads.positions(["TSLA"])] == ["TSLA"]

    assert await reads.open_lots() == [OpenLotView("AAPL", f"{tx(2)}:0", "SELL", "0.5")]

    trades = await reads.trades()
    assert [t.trade_id for t in trades] == [f"{tx(n)}:0" for n in (1, 2, 3)]
    assert (trades[0].amount, trades[0].price, trades[0].log_index) == ("2.5", "100", 0)
    assert [t.trade_id for t in await reads.trades(symbol="TSLA")] == [f"{tx(3)}:0"]
    only = await reads.trades(tx_hash=tx(2).upper().replace("0X", "0x"))
    assert [t.trade_id for t in only] == [f"{tx(2)}:0"]

    links = await reads.links([t.key for t in trades])
    assert links[(tx(1), 0)] == [
        Link("netted", f"{tx(2)}:0", "0.5"),
        Link("reserved", "h-1", "2"),
    ]
    assert links[(tx(3), 0)] == [Link("hedged", "h-2", "1")]


async def test_hedge_orders_both_orders_and_their_coverage(store: Store) -> None:
    reads = store.reads
    oldest_first = await reads.hedge_orders()
    assert [h.client_order_id for h in oldest_first] == ["h-1", "h-2"]
    assert [h.client_order_id for h in await reads.hedge_orders(symbol="TSLA")] == ["h-2"]
    h2 = oldest_first[1]
    assert (h2.state, h2.filled_quantity, h2.average_price) == ("filled", "1", "199.5")
    assert list(h2.to_json())[:3] == ["client_order_id", "symbol", "side"]

    newest = await reads.recent_hedge_orders(limit=1)
    assert [h.client_order_id for h in newest] == ["h-2"]
    assert await reads.recent_hedge_orders(client_order_ids=[]) == []
    assert await reads.hedge_coverage(["h-1", "h-2"]) == [
        HedgeCoverage("h-1", f"{tx(1)}:0", "reserved", "2"),
        HedgeCoverage("h-2", f"{tx(3)}:0", "hedged", "1"),
    ]
    assert await reads.open_hedge_ids() == ["h-1"]
    assert [(h.client_order_id, h.symbol) for h in await reads.open_hedges()] == [("h-1", "AAPL")]
    assert len(await reads.hedge_latencies("h-2")) == 1
    assert len(await reads.closed_hedge_latencies()) == 1
    assert await reads.hedge_state_counts() == {"filled": 1, "pending": 1}


async def test_dashboard_counts_events_and_trades(store: Store) -> None:
    reads = store.reads
    assert await reads.fill_count() == 3
    assert await reads.skip_reason_counts() == {
        "bad json at line 7": 1,
        "bad json at line 9": 1,
    }
    recent = await reads.recent_trades(limit=2)
    assert [t.trade_id for t in recent] == [f"{tx(3)}:0", f"{tx(2)}:0"]
    picked = await reads.recent_trades(trade_ids=[f"{tx(1)}:0"])
    assert [t.trade_id for t in picked] == [f"{tx(1)}:0"]
    assert await reads.recent_trades(trade_ids=[]) == []

    events = await reads.events_after(0, 100)
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    assert [e.event_type for e in await reads.events_after(events[-4].position, 1)] == [
        "HedgeClosed"
    ]
    trade_events = await reads.trade_events(0, 100)
    assert [e.event_type for e in trade_events] == ["FillRecorded"] * 3 + ["HedgeClosed"]
    assert trade_events[0].aggregate_id == "AAPL"
    await reads.ping()


async def test_breaker_history_reads_the_log_newest_first(store: Store) -> None:
    reads = store.reads
    assert await reads.last_breaker_change() is None
    rows = [("t1", "pause", "why", "op", None), ("t2", "resume", "ok", "op", "1.2.3.4")]
    sql = "INSERT INTO circuit_breaker_log (at, action, reason, actor, remote) VALUES "
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            db.executemany(sql + "(?, ?, ?, ?, ?)", rows)
    else:
        with psycopg.connect(store.url) as pg:
            pg.cursor().executemany(sql + "(%s, %s, %s, %s, %s)", rows)
    last = await reads.last_breaker_change()
    assert last is not None and (last.action, last.remote) == ("resume", "1.2.3.4")
    assert [c.at for c in await reads.breaker_history(5)] == ["t2", "t1"]
    assert [c.at for c in await reads.breaker_history(1)] == ["t2"]


async def test_rebalancing_payloads_are_empty_without_a_rebalancing_log(
    store: Store,
) -> None:
    assert await store.reads.rebalancing_payloads("CostRecorded") == []

    async def no_table(sql: str, params: object) -> list[tuple[object, ...]]:
        raise sqlite3.OperationalError("no such table: rebalancing_events")

    assert await SqliteReads(no_table).rebalancing_payloads("CostRecorded") == []


async def test_an_own_read_connection_reads_the_same_and_cannot_write(
    store: Store, database: str
) -> None:
    reader = await ReadConnection.open(database)
    try:
        assert await reader.reads.positions() == await store.reads.positions()
        assert await reader.reads.trades() == await store.reads.trades()
        with pytest.raises((sqlite3.OperationalError, psycopg.Error), match="read"):
            await reader.fetch("DELETE FROM skipped_inputs")
    finally:
        await reader.close()
    with pytest.raises(StoreError):
        await reader.reads.ping()

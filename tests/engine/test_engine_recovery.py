"""Crash recovery: an intent without a confirmed order is looked up before anything is placed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config, start_engine, stop, wait_for

from st0x_liquidity.domain.orders import MarketOrder, OrderState


async def crash_with_pending_intent(
    tmp_path: Path, *, broker_took_it: bool
) -> tuple[ScriptedExecutor, str]:
    """Run until a hedge intent is durable and the broker call hangs, then cut the engine off."""
    config = make_config(tmp_path, engine={"shutdown_timeout": 0.1})
    broker = ScriptedExecutor()
    hang = asyncio.Event()

    async def hanging_place(order: MarketOrder) -> object:
        broker.place_calls[order.client_order_id] += 1
        if broker_took_it:
            broker.accept(order)
        await hang.wait()
        raise AssertionError("unreachable")

    broker.place_market_order = hanging_place  # type: ignore[method-assign,assignment]
    source = QueueSource()
    _engine, store, task = await start_engine(config, broker, source)
    source.push(fill(1, "tAAPL", "SELL", "1.5"))
    await wait_for(lambda: sum(broker.place_calls.values()) == 1)
    [(cid, state)] = await store.fetch("SELECT client_order_id, state FROM hedge_orders")
    assert state == "pending"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.close()
    return broker, cid


async def test_recovery_finds_an_order_the_broker_already_has(tmp_path: Path) -> None:
    before, cid = await crash_with_pending_intent(tmp_path, broker_took_it=True)
    broker = ScriptedExecutor()
    broker.orders = before.orders
    broker.updates = before.updates
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), broker, source)
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert broker.find_calls[cid] == 1
    assert broker.place_calls == {}, "must not place an order the broker already has"
    assert source.resumed_from == [{"n": 1}]
    [(state, filled)] = await store.fetch("SELECT state, filled_quantity FROM hedge_orders")
    assert (state, filled) == ("filled", "1")
    await stop(engine, task, store)


async def test_recovery_places_an_intent_the_broker_never_saw_exactly_once(tmp_path: Path) -> None:
    _, cid = await crash_with_pending_intent(tmp_path, broker_took_it=False)
    broker = ScriptedExecutor()
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), broker, source)
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert broker.find_calls[cid] == 1
    assert dict(broker.place_calls) == {cid: 1}, "placed again with the same client_order_id"
    await stop(engine, task, store)


async def test_submitted_orders_are_tracked_after_restart_without_new_fills(tmp_path: Path) -> None:
    """Seed weakness: stuck orders were only recovered when a new fill arrived."""
    config = make_config(tmp_path)
    broker = ScriptedExecutor()
    broker.on_place = lambda order, n: broker.accept(order, OrderState.SUBMITTED)
    source = QueueSource()
    engine, store, task = await start_engine(config, broker, source)
    source.push(fill(1, "tAAPL", "BUY", "3"))
    await wait_for(lambda: engine.status.hedges_placed == 1)
    await stop(engine, task, store)

    [(bid, upd)] = broker.updates.items()
    broker.updates[bid] = broker.accept(broker.orders[upd.client_order_id or ""])  # now filled
    source2 = QueueSource()
    engine, store, task = await start_engine(config, broker, source2)
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert broker.find_calls == {} and sum(broker.place_calls.values()) == 1
    [position] = await store.positions()
    assert position.net == 0 and position.pending_hedge is None
    await stop(engine, task, store)


async def test_graceful_stop_lets_an_in_flight_placement_finish(tmp_path: Path) -> None:
    config = make_config(tmp_path, engine={"shutdown_timeout": 5.0})
    broker = ScriptedExecutor()
    release = asyncio.Event()
    calling = asyncio.Event()
    original = broker.place_market_order

    async def slow_place(order: MarketOrder) -> object:
        calling.set()
        await release.wait()
        return await original(order)

    broker.place_market_order = slow_place  # type: ignore[method-assign,assignment]
    source = QueueSource()
    engine, store, task = await start_engine(config, broker, source)
    source.push(fill(1, "tAAPL", "SELL", "2"))
    await asyncio.wait_for(calling.wait(), 30)
    engine.request_stop()
    await asyncio.sleep(0.05)
    assert not task.done(), "must wait for the broker call in flight"
    release.set()
    await asyncio.wait_for(task, 5)
    rows = await store.fetch("SELECT state, broker_order_id FROM hedge_orders")
    assert rows[0][1] is not None, "the accepted order was recorded before exit"
    await store.close()


async def test_books_rebuilt_on_start_match_the_store(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    broker = ScriptedExecutor()
    broker.clock = broker.clock.__class__(False)  # closed: everything stays open
    source = QueueSource()
    engine, store, task = await start_engine(config, broker, source)
    source.push(
        fill(1, "tAAPL", "BUY", "0.7"),
        fill(2, "tAAPL", "SELL", "0.2"),
        fill(3, "tAAPL", "BUY", "1.1"),
    )
    await wait_for(lambda: engine.status.fills_ingested == 3)
    before = engine.books["AAPL"]
    await stop(engine, task, store)
    engine2, store2, task2 = await start_engine(config, broker, QueueSource())
    await wait_for(lambda: "AAPL" in engine2.books)
    after = engine2.books["AAPL"]
    assert [(lot.trade_id, lot.open) for lot in after.lots] == [
        (lot.trade_id, lot.open) for lot in before.lots
    ]
    assert after.net == Decimal("1.6") and after.last_price == before.last_price
    await stop(engine2, task2, store2)

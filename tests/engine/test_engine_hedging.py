"""The real engine over a real SQLite file: when hedges go out, and for how much."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config, start_engine, stop, wait_for

from st0x_liquidity.domain.orders import MarketClock, OrderRules, OrderState, OrderUpdate
from st0x_liquidity.errors import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    FinalBrokerError,
    RetryableBrokerError,
)
from st0x_liquidity.protocols import SkippedItem


async def hedges(store) -> list[tuple[str, str, str, str, str]]:  # type: ignore[no-untyped-def]
    return [
        tuple(r)
        for r in await store.fetch(
            "SELECT symbol, side, quantity, state, filled_quantity FROM hedge_orders "
            "ORDER BY created_at, client_order_id"
        )
    ]


async def test_whole_share_hedges_go_out_at_the_threshold(tmp_path: Path) -> None:
    executor = ScriptedExecutor(OrderRules.whole_shares())
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "SELL", "0.3", "150"), fill(2, "tAAPL", "SELL", "0.5", "151"))
    await wait_for(lambda: engine.status.fills_ingested == 2)
    assert await hedges(store) == []
    source.push(fill(3, "tAAPL", "SELL", "0.4", "152"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert await hedges(store) == [("AAPL", "BUY", "1", "filled", "1")]
    source.push(fill(5, "AAPL", "BUY", "0.5", "149"), fill(6, "tAAPL", "BUY", "0.9", "150.25"))
    await wait_for(lambda: engine.status.hedges_filled == 2)
    assert (await hedges(store))[1] == ("AAPL", "SELL", "1", "filled", "1")
    positions = await store.positions()
    assert [(p.symbol.ticker, p.net) for p in positions] == [("AAPL", Decimal("0.2"))]
    await stop(engine, task, store)


async def test_fractional_hedges_wait_for_the_minimum_notional(tmp_path: Path) -> None:
    executor = ScriptedExecutor(OrderRules.fractional_shares(9, Decimal(2)))
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tTSLA", "BUY", "0.0099", "200"))  # $1.98
    await wait_for(lambda: engine.status.fills_ingested == 1)
    await asyncio.sleep(0.05)
    assert await hedges(store) == []
    source.push(fill(2, "tTSLA", "BUY", "0.0001", "200"))  # now $2.00
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert await hedges(store) == [("TSLA", "SELL", "0.01", "filled", "0.01")]
    await stop(engine, task, store)


async def test_min_notional_override_from_config(tmp_path: Path) -> None:
    executor = ScriptedExecutor(OrderRules.fractional_shares(9, Decimal(2)))
    source = QueueSource()
    config = make_config(tmp_path, hedging={"min_notional": "10"})
    engine, store, task = await start_engine(config, executor, source)
    source.push(fill(1, "tTSLA", "BUY", "0.04", "200"))  # $8
    await wait_for(lambda: engine.status.fills_ingested == 1)
    await asyncio.sleep(0.05)
    assert await hedges(store) == []
    source.push(fill(2, "tTSLA", "BUY", "0.01", "200"))  # $10
    await wait_for(lambda: engine.status.hedges_filled == 1)
    await stop(engine, task, store)


async def test_at_most_one_hedge_in_flight_per_symbol(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    executor.on_place = lambda order, n: executor.accept(order, OrderState.SUBMITTED)
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "BUY", "2"))
    await wait_for(lambda: len(executor.place_calls) == 1)
    source.push(fill(2, "tAAPL", "BUY", "5"), fill(3, "tMSFT", "BUY", "1"))
    await wait_for(lambda: len(executor.place_calls) == 2)
    await asyncio.sleep(0.1)
    assert sorted(o.symbol.ticker for o in executor.orders.values()) == ["AAPL", "MSFT"]
    # Fill the AAPL order: the 5 accumulated shares are hedged next.
    aapl = next(o for o in executor.orders.values() if o.symbol.ticker == "AAPL")
    executor.updates[f"b-{aapl.client_order_id}"] = OrderUpdate(
        f"b-{aapl.client_order_id}", OrderState.FILLED, Decimal(2), Decimal(100)
    )
    await wait_for(lambda: len(executor.place_calls) == 3)
    third = [o for o in executor.orders.values() if o.symbol.ticker == "AAPL"][-1]
    assert third.quantity == 5
    await stop(engine, task, store)


async def test_partial_fill_then_cancel_rehedges_only_the_rest(tmp_path: Path) -> None:
    """Seed weakness: the partially filled part was ignored and re-hedged in full."""
    executor = ScriptedExecutor()
    states = iter(
        [
            lambda bid, u: OrderUpdate(
                bid, OrderState.PARTIALLY_FILLED, Decimal(3), Decimal("101")
            ),
            lambda bid, u: OrderUpdate(
                bid, OrderState.CANCELLED, Decimal(3), Decimal("101"), "expired"
            ),
        ]
    )
    executor.on_place = lambda order, n: (
        executor.accept(order, OrderState.SUBMITTED)
        if order.quantity == 10
        else executor.accept(order)
    )
    executor.on_status = lambda bid, u: (
        next(states)(bid, u)
        if u.state is OrderState.SUBMITTED or u.state is OrderState.PARTIALLY_FILLED
        else u
    )
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "BUY", "10"))
    await wait_for(lambda: engine.status.hedges_filled == 1, timeout=10)
    rows = await hedges(store)
    assert rows[0] == ("AAPL", "SELL", "10", "cancelled", "3")
    assert rows[1] == ("AAPL", "SELL", "7", "filled", "7")
    [position] = await store.positions()
    assert position.net == 0
    await stop(engine, task, store)


async def test_final_rejection_fails_the_hedge_and_it_is_retried_after_cooldown(
    tmp_path: Path,
) -> None:
    """Seed weakness: a failed hedge blocked the next hedge of the symbol."""
    executor = ScriptedExecutor()
    executor.on_place = lambda order, n: (
        FinalBrokerError("insufficient buying power")
        if order.client_order_id.endswith("-1")
        else executor.accept(order)
    )
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "SELL", "2"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    rows = await store.fetch(
        "SELECT state, reason FROM hedge_orders ORDER BY created_at, client_order_id"
    )
    assert rows[0] == ("failed", "insufficient buying power")
    assert rows[1][0] == "filled"
    await stop(engine, task, store)


async def test_ambiguous_placement_asks_the_broker_before_placing_again(tmp_path: Path) -> None:
    executor = ScriptedExecutor()

    def place(order, n):  # type: ignore[no-untyped-def]
        executor.accept(order)  # the broker took it, but the answer was lost
        return AmbiguousBrokerError("connection reset")

    executor.on_place = place
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "SELL", "1"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    [(cid, calls)] = executor.place_calls.items()
    assert calls == 1 and executor.find_calls[cid] == 1
    await stop(engine, task, store)


async def test_retryable_errors_are_retried_with_the_same_client_order_id(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    executor.on_place = lambda order, n: (
        RetryableBrokerError("429 too many requests") if n < 3 else executor.accept(order)
    )
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "SELL", "1"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert list(executor.place_calls.values()) == [3]
    await stop(engine, task, store)


async def test_auth_failure_pauses_hedging_and_fills_keep_accumulating(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    authorised = asyncio.Event()
    executor.on_place = lambda order, n: (
        executor.accept(order)
        if authorised.is_set()
        else AuthenticationRequiredError("run `schwab auth`")
    )
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "SELL", "1"))
    await wait_for(lambda: engine.status.auth_required is not None)
    source.push(fill(2, "tAAPL", "SELL", "1"), fill(3, "tNVDA", "BUY", "1"))
    await wait_for(lambda: engine.status.fills_ingested == 3)
    assert engine.status.hedges_filled == 0
    authorised.set()
    await wait_for(lambda: engine.status.hedges_filled >= 3, timeout=10)
    [aapl, nvda] = await store.positions()
    assert aapl.net == 0 and nvda.net == 0
    await stop(engine, task, store)


async def test_market_closed_accumulates_and_hedges_at_the_open(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    executor.clock = MarketClock(False)
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "SELL", "1.5"), fill(2, "tAAPL", "SELL", "1"))
    await wait_for(lambda: engine.status.fills_ingested == 2)
    await asyncio.sleep(0.1)
    assert executor.place_calls == {}
    executor.clock = MarketClock(True)
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert [o.quantity for o in executor.orders.values()] == [2]
    await stop(engine, task, store)


async def test_bad_input_is_skipped_without_blocking_later_fills(tmp_path: Path) -> None:
    """Seed weakness: one undecodable event blocked every later event."""
    executor = ScriptedExecutor()
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push_item(SkippedItem("undecodable log", "0xdead", {"n": 0}))
    source.push(fill(1, "tAAPL", "SELL", "1"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert await store.fetch("SELECT source, reason, raw FROM skipped_inputs") == [
        ("test", "undecodable log", "0xdead")
    ]
    await stop(engine, task, store)


async def test_a_fill_delivered_twice_is_counted_once(tmp_path: Path) -> None:
    """Seed weakness: a fill counted twice when its processing was retried."""
    executor = ScriptedExecutor()
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    f = fill(1, "tAAPL", "SELL", "0.6")
    source.push(f, f)
    await wait_for(lambda: engine.status.fills_ingested + engine.status.duplicates_dropped == 2)
    source.push(f)
    await wait_for(lambda: engine.status.duplicates_dropped == 2)
    [position] = await store.positions()
    assert position.net == Decimal("-0.6") and position.fills == 1
    await stop(engine, task, store)

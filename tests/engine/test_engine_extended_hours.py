"""Hedging outside regular hours: limits by session, the price chain, repricing, the open.

A real engine over a real SQLite store, with the dry-run broker's sessions
(frozen simulated clock, moved by the test) as the broker.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config, start_engine, stop, wait_for

from st0x_liquidity.builtin.dry_run_sessions import DryRunSessionsExecutor
from st0x_liquidity.domain.orders import LimitOrder
from st0x_liquidity.domain.sessions import NEW_YORK
from st0x_liquidity.engine import Engine
from st0x_liquidity.errors import RetryableBrokerError
from st0x_liquidity.store.sqlite import SqliteStore


def ny(y: int, m: int, d: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=NEW_YORK).astimezone(UTC)


TUESDAY_POST = ny(2026, 3, 3, 17)
FRIDAY_LATE = ny(2026, 3, 6, 19, 55)
SATURDAY = ny(2026, 3, 7, 12)
WEDNESDAY_PRE = ny(2026, 3, 4, 9, 29)


def setup(
    tmp_path: Path,
    start: datetime,
    *,
    symbols: dict[str, Any] | None = None,
    broker: dict[str, Any] | None = None,
    extended: dict[str, Any] | None = None,
) -> tuple[Any, DryRunSessionsExecutor]:
    config = make_config(
        tmp_path,
        broker={
            "sessions": True,
            "clock_start": start.isoformat(),
            "clock_speed": 0,
            "profile": "fractional",
            "min_notional": "1",
            **(broker or {}),
        },
        extended_hours={
            "symbols": {"AAPL": {}} if symbols is None else symbols,
            "check_interval": 0.02,
            "reprice_timeout": 60,
            "close_flatten_reprice_timeout": 30,
            **(extended or {}),
        },
        reconciliation={"enabled": False},
    )
    return config, DryRunSessionsExecutor(config.broker, tmp_path / "ledger.sqlite")


async def run(
    config: Any, broker: DryRunSessionsExecutor
) -> tuple[Engine, SqliteStore, Any, QueueSource]:
    await broker.start()
    source = QueueSource()
    engine, store, task = await start_engine(config, broker, source)
    await wait_for(lambda: engine.recovered.is_set() and engine.sessions.loaded_at is not None)
    return engine, store, task, source


async def orders(store: SqliteStore) -> list[dict[str, Any]]:
    rows = await store.fetch(
        "SELECT client_order_id, side, quantity, state, filled_quantity, order_type, limit_price, "
        "session, reference_source, cancel_reason FROM hedge_orders ORDER BY created_at, client_order_id"
    )
    keys = ("cid", "side", "qty", "state", "filled", "type", "limit", "session", "source", "cancel")
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def finish(
    engine: Engine, task: Any, store: SqliteStore, broker: DryRunSessionsExecutor
) -> None:
    await stop(engine, task, store)
    await broker.close()


async def test_after_hours_hedge_is_a_limit_towards_crossing(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST)
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    [order] = await orders(store)
    assert order | {"cid": None} == {
        "cid": None,
        "side": "SELL",
        "qty": "10",
        "state": "filled",
        "filled": "10",
        "type": "limit",
        "limit": "99.5",  # 100 moved 50 bps down: a sell crosses downwards
        "session": "post",
        "source": "onchain",
        "cancel": None,
    }
    assert await broker.placement_attempts() == {order["cid"]: 1}
    [(net,)] = await store.fetch("SELECT net FROM positions WHERE symbol = 'AAPL'")
    assert Decimal(net) == 0
    await finish(engine, task, store, broker)


async def test_a_short_is_covered_with_a_buy_limit_above(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST)
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "SELL", "2.5", "0.5"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    [order] = await orders(store)
    assert (order["side"], order["limit"]) == ("BUY", "0.5025")  # sub-dollar: four decimals
    await finish(engine, task, store, broker)


async def test_a_symbol_not_opted_in_waits_for_the_open(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST, symbols={"TSLA": {}})
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.fills_ingested == 1)
    await asyncio.sleep(0.2)  # ten session checks: none places anything
    assert await orders(store) == []
    assert await broker.placement_attempts() == {}
    await finish(engine, task, store, broker)


async def test_an_ineligible_symbol_waits_for_the_open(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST, broker={"eligible": ["TSLA"]})
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.fills_ingested == 1)
    assert engine.sessions.session("AAPL", broker.clock.now())[0].session.value == "closed"
    assert await orders(store) == []
    await finish(engine, task, store, broker)


async def test_the_pyth_price_of_the_fill_is_the_reference(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST)
    store = SqliteStore(config.database_path)
    await store.open()
    record = {"pyth": {"price": "100.40"}}
    trade = f"0x{1:064x}:0"
    await store.put_blob("raindex.enrichment", trade, json.dumps(record).encode())
    await store.close()
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    [order] = await orders(store)
    assert (order["source"], order["limit"]) == ("pyth", "99.89")  # 100.40 * 0.995, down
    [(reference,)] = await store.fetch("SELECT reference_price FROM hedge_orders")
    assert Decimal(reference) == Decimal("100.40")
    await finish(engine, task, store, broker)


async def test_a_limit_beyond_the_loss_bound_waits_visibly(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST)
    store = SqliteStore(config.database_path)
    await store.open()
    trade = f"0x{1:064x}:0"
    await store.put_blob("raindex.enrichment", trade, b'{"pyth": {"price": "95"}}')
    await store.close()
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    blocked = engine.status.blocked["AAPL"]
    assert blocked["limit"] == "max_loss_bps"
    assert "94.52" in blocked["reason"] and "bound is 300 bps" in blocked["reason"]
    assert await orders(store) == []
    await finish(engine, task, store, broker)


async def test_an_unfilled_limit_is_repriced_once_with_a_new_client_order_id(
    tmp_path: Path,
) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST, broker={"prices": {"AAPL": "90"}})
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_placed == 1)
    first = (await orders(store))[0]
    assert first["state"] == "submitted"
    broker.clock.advance(30)  # younger than the reprice timeout: left alone
    [live] = engine.extended_hours()["limits"]  # what the operator sees
    assert (live["client_order_id"], live["reference_source"]) == (first["cid"], "onchain")
    assert (live["limit_price"], live["session"], live["age_seconds"]) == ("99.5", "post", 30.0)
    await asyncio.sleep(0.2)  # ten session checks and polls: none reprices
    assert len(await orders(store)) == 1
    broker.clock.advance(31)
    await wait_for(lambda: engine.status.hedges_placed == 2)
    broker.set_price("AAPL", Decimal(100))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    one, two = await orders(store)
    assert one["cid"] == first["cid"] and two["cid"] != one["cid"]
    assert (one["state"], one["filled"], one["cancel"]) == ("cancelled", "0", "reprice")
    assert (two["state"], two["filled"], two["qty"]) == ("filled", "10", "10")
    attempts = await broker.placement_attempts()
    assert attempts == {one["cid"]: 1, two["cid"]: 1}
    types = [r[0] for r in await store.fetch("SELECT event_type FROM events ORDER BY rowid")]
    cancel_at = types.index("HedgeCancelRequested")
    assert types[cancel_at + 1] == "HedgeClosed"  # confirmed and booked before anything new
    assert types.count("HedgeIntended") == 2
    await finish(engine, task, store, broker)


async def test_a_partial_fill_is_booked_before_the_rest_is_placed_again(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST, broker={"limit_partial_fraction": "0.4"})
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_placed == 1)
    await wait_for(lambda: _state(store, "partially_filled"))
    broker.clock.advance(61)
    await wait_for(lambda: engine.status.hedges_placed == 2)
    one, two = (await orders(store))[:2]
    assert (one["state"], one["filled"]) == ("cancelled", "4")
    assert two["qty"] == "6"  # only what the first did not fill goes out again
    await wait_for(lambda: _state(store, "partially_filled"))  # the second, in part too
    two = (await orders(store))[1]
    [(net,)] = await store.fetch("SELECT net FROM positions WHERE symbol = 'AAPL'")
    assert Decimal(net) == 10 - 4 - Decimal(two["filled"])
    await finish(engine, task, store, broker)


async def _state(store: SqliteStore, state: str) -> bool:
    return bool(await store.fetch("SELECT 1 FROM hedge_orders WHERE state = ?", (state,)))


async def test_at_the_regular_open_the_limit_is_cancelled_and_the_rest_goes_market(
    tmp_path: Path,
) -> None:
    config, broker = setup(tmp_path, WEDNESDAY_PRE, broker={"prices": {"AAPL": "90"}})
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_placed == 1)
    assert (await orders(store))[0]["session"] == "pre"
    broker.clock.set(ny(2026, 3, 4, 9, 30, 1))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    one, two = await orders(store)
    assert (one["type"], one["state"], one["cancel"]) == ("limit", "cancelled", "regular_open")
    assert (two["type"], two["state"], two["qty"]) == (None, "filled", "10")
    await finish(engine, task, store, broker)


@pytest.mark.parametrize(
    ("start", "limit"),
    [
        (ny(2026, 3, 3, 19, 55), "99.5"),  # Tuesday: Wednesday trades, no flattening
        (FRIDAY_LATE, "98.5"),  # Friday, 5 of 15 minutes left: 50 + 150 * 2/3 bps
    ],
)
async def test_close_flatten_widens_the_offset_before_a_weekend(
    tmp_path: Path, start: datetime, limit: str
) -> None:
    config, broker = setup(tmp_path, start)
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    [order] = await orders(store)
    assert order["limit"] == limit
    await finish(engine, task, store, broker)


async def test_close_flatten_reprices_sooner(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, FRIDAY_LATE, broker={"prices": {"AAPL": "90"}})
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_placed == 1)
    broker.clock.advance(31)  # past close_flatten_reprice_timeout (30), not reprice_timeout
    await wait_for(lambda: engine.status.hedges_placed == 2)
    one, two = await orders(store)
    assert one["cancel"] == "reprice"
    assert Decimal(two["limit"]) < Decimal(one["limit"])  # wider as the close nears
    await finish(engine, task, store, broker)


async def test_over_the_weekend_nothing_is_placed_and_the_next_session_is_known(
    tmp_path: Path,
) -> None:
    config, broker = setup(tmp_path, SATURDAY, symbols={"AAPL": {"overnight": True}})
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.fills_ingested == 1)
    view = engine.sessions.snapshot(broker.clock.now())["symbols"]["AAPL"]
    assert view["session"] == "closed"
    assert view["next_session"] == "overnight"
    assert view["next_hedge_at"] == ny(2026, 3, 8, 20).isoformat()  # Sunday 20:00
    assert view["hedgeable_hours_per_week"] == 120.0
    assert await orders(store) == []
    broker.clock.set(ny(2026, 3, 8, 20, 0, 1))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    [order] = await orders(store)
    assert order["session"] == "overnight"
    await finish(engine, task, store, broker)


class FlakyCalendar(DryRunSessionsExecutor):
    """The calendar fails twice before it answers."""

    failures = 2

    async def trading_days(self, start: Any, end: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise RetryableBrokerError("calendar: 503")
        return await super().trading_days(start, end)


async def test_a_calendar_that_fails_is_asked_again_and_hedges_wait_meanwhile(
    tmp_path: Path,
) -> None:
    config, _ = setup(tmp_path, TUESDAY_POST, extended={"calendar_refresh": 0.05})
    broker = FlakyCalendar(config.broker, tmp_path / "ledger.sqlite")
    await broker.start()
    source = QueueSource()
    engine, store, task = await start_engine(config, broker, source)
    await wait_for(lambda: engine.status.calendar_error is not None)
    assert "503" in str(engine.status.calendar_error)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)  # once the calendar answered
    assert engine.status.calendar_error is None and broker.failures == 0
    [order] = await orders(store)
    assert order["type"] == "limit"
    await finish(engine, task, store, broker)


async def test_a_broker_without_extended_hours_hedges_as_before(tmp_path: Path) -> None:
    config, _ = setup(tmp_path, TUESDAY_POST)
    executor = ScriptedExecutor()  # market clock open, no ExtendedHoursExecutor
    source = QueueSource()
    engine, store, task = await start_engine(config, executor, source)
    assert not engine.sessions.active
    source.push(fill(1, "tAAPL", "BUY", "3", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    [order] = await orders(store)
    assert order["type"] is None and order["qty"] == "3"  # a market order, as always
    assert engine.extended_hours()["active"] is False
    await stop(engine, task, store)


@pytest.mark.parametrize("broker_took_it", [False, True])
async def test_a_limit_intent_left_pending_by_a_crash_is_placed_once(
    tmp_path: Path, broker_took_it: bool
) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST, extended={"reprice_timeout": 3600})
    engine, store, task, source = await run(config, broker)
    hang = asyncio.Event()
    real_place = broker.place_limit_order

    async def hanging_place(order: LimitOrder) -> Any:
        if broker_took_it:
            await real_place(order)
        await hang.wait()

    broker.place_limit_order = hanging_place  # type: ignore[method-assign]
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: _state(store, "pending"))
    [pending] = await orders(store)
    task.cancel()  # the crash: the intent is durable, the broker's answer never came
    await asyncio.gather(task, return_exceptions=True)
    await store.close()
    await broker.close()

    broker = DryRunSessionsExecutor(config.broker, tmp_path / "ledger.sqlite")
    engine, store, task, source = await run(config, broker)
    await wait_for(lambda: engine.status.hedges_filled == 1)
    [order] = await orders(store)
    assert order["cid"] == pending["cid"] and order["state"] == "filled"
    assert await broker.placement_attempts() == {order["cid"]: 1}
    await finish(engine, task, store, broker)


async def test_an_opted_in_symbol_without_fills_in_regular_hours_stops_nothing(
    tmp_path: Path,
) -> None:
    config, broker = setup(tmp_path, ny(2026, 3, 4, 11), symbols={"AAPL": {}, "TSLA": {}})
    engine, store, task, source = await run(config, broker)
    await asyncio.sleep(0.2)  # ten session checks in regular hours, no symbol has a book
    broker.clock.set(SATURDAY)
    await wait_for(lambda: not engine.status.market_open)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.fills_ingested == 1)
    broker.clock.set(ny(2026, 3, 9, 4, 0, 1))  # Monday pre-market: only the session loop
    await wait_for(lambda: engine.status.hedges_filled == 1)  # places the waiting hedge
    [order] = await orders(store)
    assert order["session"] == "pre"
    await finish(engine, task, store, broker)


TUESDAY_LATE = ny(2026, 3, 3, 15)


async def test_a_clock_that_still_says_open_after_16_sends_no_market_order(
    tmp_path: Path,
) -> None:
    """The broker's clock is read again only at its next change: at 16:00:01 it may
    still say open. The calendar decides, and the hedge goes out as a limit."""
    config, broker = setup(tmp_path, TUESDAY_LATE)
    config = attrs.evolve(config, hedging=attrs.evolve(config.hedging, clock_recheck=600.0))
    engine, store, task, source = await run(config, broker)
    await wait_for(lambda: engine.status.market_open)
    broker.clock.set(ny(2026, 3, 3, 16, 0, 1))  # the gate sleeps on: still "open"
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert engine.status.market_open  # the gate did not look again meanwhile
    [order] = await orders(store)
    assert (order["type"], order["session"], order["state"]) == ("limit", "post", "filled")
    assert engine.status.hedges_failed == 0
    await finish(engine, task, store, broker)


async def test_a_market_hedge_that_reaches_the_broker_after_16_becomes_a_limit(
    tmp_path: Path,
) -> None:
    """Decided at 15:59:59, its first call refused (503) and retried at 16:00:01: the
    session is checked right before each call, so no market order goes out."""
    config, broker = setup(tmp_path, ny(2026, 3, 3, 15, 59, 59))
    engine, store, task, source = await run(config, broker)
    await wait_for(lambda: engine.status.market_open)
    real_place = broker.place_market_order
    calls: list[str] = []

    async def refused_at_the_close(order: Any) -> Any:
        calls.append(order.client_order_id)
        if len(calls) == 1:
            broker.clock.set(ny(2026, 3, 3, 16, 0, 1))
            raise RetryableBrokerError("503")
        return await real_place(order)

    broker.place_market_order = refused_at_the_close  # type: ignore[method-assign]
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    one, two = await orders(store)
    assert (one["type"], one["state"], one["filled"]) == (None, "cancelled", "0")
    assert (two["type"], two["session"], two["state"]) == ("limit", "post", "filled")
    assert calls == [one["cid"]]  # the market order was tried once, before 16:00
    assert await broker.placement_attempts() == {two["cid"]: 1}
    await finish(engine, task, store, broker)


async def test_a_limit_decided_before_20_is_priced_again_in_the_next_session(
    tmp_path: Path,
) -> None:
    """Its placement delayed past 20:00 (no overnight): not sent into a closed market;
    closed unplaced, and priced anew at 04:00."""
    config, broker = setup(tmp_path, ny(2026, 3, 3, 19, 59, 59))
    engine, store, task, source = await run(config, broker)
    real_place = broker.place_limit_order
    calls: list[str] = []

    async def refused_at_20(order: LimitOrder) -> Any:
        calls.append(order.client_order_id)
        if len(calls) == 1:
            broker.clock.set(ny(2026, 3, 3, 20, 0, 1))
            raise RetryableBrokerError("503")
        return await real_place(order)

    broker.place_limit_order = refused_at_20  # type: ignore[method-assign]
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: _state(store, "cancelled"))
    await asyncio.sleep(0.2)  # ten session checks at night: nothing goes out
    assert len(calls) == 1
    broker.clock.set(ny(2026, 3, 4, 4, 0, 1))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    one, two = await orders(store)
    assert (one["session"], one["state"], one["filled"]) == ("post", "cancelled", "0")
    assert (two["session"], two["state"]) == ("pre", "filled")
    assert await broker.placement_attempts() == {two["cid"]: 1}
    await finish(engine, task, store, broker)


async def test_a_limit_below_the_smallest_tick_waits_visibly(tmp_path: Path) -> None:
    config, broker = setup(tmp_path, TUESDAY_POST)
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "100000", "0.00005"))  # the sell rounds to 0
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    assert "rounds to zero" in engine.status.blocked["AAPL"]["reason"]
    assert await orders(store) == []
    await finish(engine, task, store, broker)


class EmptyCalendar(DryRunSessionsExecutor):
    """A broker calendar that answers with no trading days at all."""

    async def trading_days(self, start: Any, end: Any) -> Any:
        return []


async def test_an_empty_calendar_does_not_stop_regular_hours_hedges(tmp_path: Path) -> None:
    config, _ = setup(tmp_path, ny(2026, 3, 4, 11))
    broker = EmptyCalendar(config.broker, tmp_path / "ledger.sqlite")
    engine, store, task, source = await run(config, broker)
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)  # the broker clock decides
    [order] = await orders(store)
    assert order["type"] is None and order["state"] == "filled"
    await finish(engine, task, store, broker)


async def test_a_resting_limit_is_not_cancelled_by_a_clock_that_lags_the_close(
    tmp_path: Path,
) -> None:
    """Just after 16:00 the broker clock may still say open: that is no regular open,
    and the after-hours limit rests instead of being cancelled and placed again."""
    config, broker = setup(tmp_path, TUESDAY_LATE, broker={"prices": {"AAPL": "90"}})
    config = attrs.evolve(config, hedging=attrs.evolve(config.hedging, clock_recheck=600.0))
    engine, store, task, source = await run(config, broker)
    await wait_for(lambda: engine.status.market_open)
    broker.clock.set(ny(2026, 3, 3, 16, 0, 1))
    source.push(fill(1, "tAAPL", "BUY", "10", "100"))
    await wait_for(lambda: engine.status.hedges_placed == 1)
    await asyncio.sleep(0.3)  # fifteen session checks and polls
    assert engine.status.market_open  # still lagging
    [order] = await orders(store)
    assert (order["type"], order["state"], order["cancel"]) == ("limit", "submitted", None)
    await finish(engine, task, store, broker)

"""The engine with the real Alpaca executor and the session-aware fake, across sessions.

In-process engine (the harness's queue source and a real SQLite file), the
``alpaca-trading-api`` executor talking HTTP to the fake, both on the fake's
clock. After hours a fill is hedged with a limit order (``day``,
``extended_hours``), never a market order; an unfilled limit is repriced by
cancel-then-place under a new ``client_order_id``; at the regular open a live
limit is cancelled and the rest goes out as a market order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from st0x_alpaca import AlpacaTradingExecutor
from st0x_testing.fake_alpaca import NEW_YORK, FakeAlpacaTrading
from support.fills import fill
from support.harness import QueueSource, make_config, wait_for

from st0x_liquidity.engine import Engine
from st0x_liquidity.store import SqliteStore

KEY, SECRET = "PKENGINESESSIONS", "engine-sessions-secret"
MONDAY = date(2026, 3, 9)


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), NEW_YORK).astimezone(UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpacaTrading]:
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET, market_open=None) as server:
        assert isinstance(server, FakeAlpacaTrading)
        server.clock.set(ny(MONDAY, 17))
        server.set_price("AAPL", "190.00")
        yield server


async def run_engine(
    tmp_path: Path, fake: FakeAlpacaTrading, **extended: Any
) -> tuple[Engine, SqliteStore, asyncio.Task[None], QueueSource]:
    config = make_config(
        tmp_path,
        broker={
            "type": "alpaca-trading-api",
            "api_key": KEY,
            "api_secret": SECRET,
            "base_url": fake.base_url,
            "backoff_initial": 0.01,
            "backoff_max": 0.05,
        },
        extended_hours={
            "symbols": {"AAPL": {}},
            "offset_bps": "10",
            "check_interval": 0.05,
            **extended,
        },
    )
    executor = AlpacaTradingExecutor(config.broker, now=fake.now)
    store = SqliteStore(config.database_path)
    await store.open()
    source = QueueSource()
    engine = Engine(config, store, executor, source, database_id=store.database_id, now=fake.now)
    task = asyncio.create_task(engine.run())
    return engine, store, task, source


async def stop(engine: Engine, task: asyncio.Task[None], store: SqliteStore) -> None:
    engine.request_stop()
    await asyncio.wait_for(task, 10)
    await store.close()
    assert isinstance(engine.executor, AlpacaTradingExecutor)
    await engine.executor.close()


async def test_after_hours_fill_is_hedged_with_a_limit_order(
    tmp_path: Path, fake: FakeAlpacaTrading
) -> None:
    engine, store, task, source = await run_engine(tmp_path, fake)
    try:
        # The maker sold 2 tAAPL onchain at 190: we hedge by buying 2 AAPL.
        source.push(fill(1, "tAAPL", "SELL", "2", "190"))
        await wait_for(lambda: len(fake.orders) == 1)
        [order] = fake.orders.values()
        assert (order.order_type, order.time_in_force, order.extended_hours) == (
            "limit", "day", True
        )
        assert order.session == "post" and order.side == "buy"
        assert order.limit_price == Decimal("190.19")  # 190 + 10 bps, rounded up
        await wait_for(lambda: engine.status.hedges_filled == 1)
        assert fake.positions["AAPL"] == Decimal(2)
        assert fake.market_orders_outside_regular() == []
    finally:
        await stop(engine, task, store)


async def test_unfilled_limit_is_repriced_then_the_open_takes_over(
    tmp_path: Path, fake: FakeAlpacaTrading
) -> None:
    fake.set_price("AAPL", "195")  # far above the limit: nothing fills
    engine, store, task, source = await run_engine(tmp_path, fake, reprice_timeout=60)
    try:
        source.push(fill(1, "tAAPL", "SELL", "2", "190"))
        await wait_for(lambda: len(fake.orders) == 1)
        await wait_for(lambda: engine.status.hedges_placed == 1)  # its age starts here
        first = next(iter(fake.orders.values()))
        fake.clock.advance(61)
        await wait_for(lambda: len(fake.orders) == 2)
        assert first.status == "canceled"
        second = next(o for o in fake.orders.values() if o.id != first.id)
        assert second.client_order_id != first.client_order_id
        assert second.order_type == "limit" and second.status in ("new", "accepted")

        # 20:00 ends the day order (expired); pre-market gets a new limit.
        tuesday = MONDAY.replace(day=10)
        fake.clock.set(ny(tuesday, 9))
        await wait_for(lambda: any(o.session == "pre" for o in fake.orders.values()))
        assert second.status == "expired"
        [pre] = [o for o in fake.orders.values() if o.session == "pre"]
        assert pre.order_type == "limit"

        # The regular open: the live limit is cancelled, the rest goes out at market.
        fake.clock.set(ny(tuesday, 9, 31))
        await wait_for(lambda: any(o.order_type == "market" for o in fake.orders.values()))
        assert pre.status == "canceled"
        await wait_for(lambda: engine.status.hedges_filled == 1)
        assert fake.positions["AAPL"] == Decimal(2)
        assert fake.market_orders_outside_regular() == []
        cids = [o.client_order_id for o in fake.orders.values()]
        assert len(cids) == len(set(cids))
    finally:
        await stop(engine, task, store)

"""Every request of an executor goes through its one ``aiohttp`` session, whatever happens."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from st0x_testing.fake_alpaca import FakeAlpacaTrading

from st0x_liquidity import Direction, MarketOrder, Symbol


def count_sessions(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Record every ``aiohttp.ClientSession`` created from now on."""
    created: list[aiohttp.ClientSession] = []
    original = aiohttp.ClientSession

    def counting(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = original(*args, **kwargs)
        created.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", counting)
    return created


async def test_trading_executor_uses_one_session(
    fake: FakeAlpacaTrading, make_executor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = count_sessions(monkeypatch)
    executor = await make_executor()
    fake.inject("500", path_contains="/v2/orders/", times=2)  # retried reads
    fake.inject("drop_after", method="POST")  # an order answer lost: resolved by lookup
    fake.inject("429", path_contains="/v2/clock", retry_after="0.01")
    orders = [
        MarketOrder(Symbol("AAPL"), Direction.BUY, Decimal("0.5"), f"one-{i}", Decimal(100))
        for i in range(6)
    ]
    placed = await asyncio.gather(*(executor.place_market_order(o) for o in orders))
    for update in placed:
        await executor.order_status(update.broker_order_id)
    await executor.market_clock()
    await executor.inventory()
    assert await executor.find_order("one-0", orders[0]) is not None
    assert len(created) == 1, f"{len(created)} sessions for one executor"
    assert len(fake.orders) == 6
    assert len(fake.requests) > 15  # all of that went through the one session

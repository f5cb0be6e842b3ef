"""The Broker API executor against its fake over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from st0x_alpaca.http import AlpacaNotFound
from st0x_alpaca_broker import BASE_URLS, AlpacaBrokerConfig, AlpacaBrokerExecutor
from st0x_testing.fake_alpaca_broker import ACCOUNT_ID, FakeAlpacaBroker

from st0x_liquidity import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    BrokerError,
    Direction,
    FinalBrokerError,
    MarketOrder,
    OrderState,
    Secret,
    Symbol,
)

from .conftest import BROKER_KEY, BROKER_SECRET  # type: ignore[import-not-found]


def order(cid: str, qty: str = "1.25", side: Direction = Direction.SELL) -> MarketOrder:
    return MarketOrder(Symbol("AAPL"), side, Decimal(qty), cid, Decimal("100"))


def test_mode_picks_the_documented_base_url() -> None:
    config = AlpacaBrokerConfig(
        api_key=Secret("k"), api_secret=Secret("s"), account_id=ACCOUNT_ID
    )
    assert config.resolved_base_url() == "https://broker-api.sandbox.alpaca.markets"
    live = AlpacaBrokerConfig(
        api_key=Secret("k"), api_secret=Secret("s"), account_id=ACCOUNT_ID, mode="production"
    )
    assert live.resolved_base_url() == BASE_URLS["production"] == "https://broker-api.alpaca.markets"
    with pytest.raises(ValueError, match="UUID"):
        AlpacaBrokerConfig(api_key=Secret("k"), api_secret=Secret("s"), account_id="nope")


async def test_orders_end_to_end_with_basic_auth(
    broker_fake: FakeAlpacaBroker, make_broker_executor: Any
) -> None:
    executor: AlpacaBrokerExecutor = await make_broker_executor()
    placed = await executor.place_market_order(order("b-1", "1.0000000009999"))
    assert broker_fake.order_bodies[-1]["qty"] == "1"  # 1.0000000009999 cut to 9 decimals
    states = [placed.state]
    update = placed
    while not update.state.terminal:
        update = await executor.order_status(placed.broker_order_id)
        states.append(update.state)
    assert OrderState.PARTIALLY_FILLED in states and states[-1] is OrderState.FILLED
    assert update.filled_quantity == Decimal(1) and update.average_price == Decimal(100)
    found = await executor.find_order("b-1", order("b-1"))
    assert found is not None and found.broker_order_id == placed.broker_order_id
    assert await executor.find_order("b-unknown", order("b-unknown")) is None
    paths = {path.split("?")[0] for _m, path, _t in broker_fake.requests}
    assert f"/v1/trading/accounts/{ACCOUNT_ID}/orders" in paths
    assert f"/v1/trading/accounts/{ACCOUNT_ID}/orders:by_client_order_id" in paths


async def test_lost_post_answer_is_resolved_once(
    broker_fake: FakeAlpacaBroker, make_broker_executor: Any
) -> None:
    executor = await make_broker_executor()
    broker_fake.inject("drop_after", method="POST")
    update = await executor.place_market_order(order("b-lost"))
    assert update.client_order_id == "b-lost"
    assert len(broker_fake.orders) == 1 and broker_fake.order_posts == 1
    broker_fake.inject("500", method="POST")
    with pytest.raises(AmbiguousBrokerError):
        await executor.place_market_order(order("b-500"))
    assert broker_fake.order_by_client_id("b-500") is None


async def test_inventory(broker_fake: FakeAlpacaBroker, make_broker_executor: Any) -> None:
    broker_fake.positions = {"AAPL": Decimal("3.333333333"), "NVDA": Decimal(2)}
    broker_fake.prices["NVDA"] = Decimal("120.015")
    broker_fake.cash = Decimal("5000.005")
    executor = await make_broker_executor()
    inventory = await executor.inventory()
    assert inventory.cash == Decimal("5000.005")
    values = {str(p.symbol): (p.quantity, p.market_value) for p in inventory.positions}
    assert values == {
        "AAPL": (Decimal("3.333333333"), Decimal("333.3333333")),
        "NVDA": (Decimal(2), Decimal("240.03")),
    }


async def test_wrong_credentials_and_wrong_account(
    broker_fake: FakeAlpacaBroker, make_broker_executor: Any
) -> None:
    with pytest.raises(AuthenticationRequiredError):
        await make_broker_executor(api_secret=Secret("not-it"))
    with pytest.raises(AlpacaNotFound, match="account not found"):
        await make_broker_executor(account_id="00000000-0000-4000-8000-000000000000")
    broker_fake.account_status = "APPROVAL_PENDING"
    with pytest.raises(FinalBrokerError, match="APPROVAL_PENDING"):
        await make_broker_executor()


async def test_secrets_stay_out_of_logs_and_errors(
    broker_fake: FakeAlpacaBroker, make_broker_executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    executor = await make_broker_executor(resolve_attempts=1)
    texts = [repr(executor.config)]
    broker_fake.inject("raw", status=400, body=f'{{"message": "{BROKER_SECRET}"}}'.encode())
    broker_fake.inject("500", method="POST")
    for cid in ("s-1", "s-2"):
        try:
            await executor.place_market_order(order(cid))
        except BrokerError as exc:
            texts.append(str(exc))
    joined = "\n".join(texts + [r.getMessage() for r in caplog.records])
    assert BROKER_SECRET not in joined and BROKER_KEY not in joined


async def test_rate_limit_headers_are_honoured(make_broker_executor: Any) -> None:
    """The partner's budget is only known from X-RateLimit-*: spend it, then wait for Reset."""
    server = FakeAlpacaBroker(key=BROKER_KEY, secret=BROKER_SECRET, rate_limit=4, rate_window=1.0)
    await server.start()
    try:
        executor = await make_broker_executor(
            base_url=server.base_url, rate_limit_per_minute=60000, rate_limit_burst=100
        )
        started = time.monotonic()
        for _ in range(9):
            await executor.market_clock()
        elapsed = time.monotonic() - started
    finally:
        await server.stop()
    # start() used one request; X-RateLimit-Remaining: 0 pauses the client until Reset,
    # so the server never had to refuse anything.
    assert server.rate_limited == 0
    assert elapsed >= 1.0


async def test_concurrent_hedges_share_one_session(
    broker_fake: FakeAlpacaBroker, make_broker_executor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[aiohttp.ClientSession] = []
    original = aiohttp.ClientSession

    def counting(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        created.append(original(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(aiohttp, "ClientSession", counting)
    executor = await make_broker_executor()
    broker_fake.inject("503", path_contains="/orders/", times=2)  # retried reads
    broker_fake.inject("drop_after", method="POST")  # a lost answer, resolved by lookup
    results = await asyncio.gather(*(executor.place_market_order(order(f"c-{i}")) for i in range(8)))
    assert len({r.broker_order_id for r in results}) == 8
    for result in results:
        await executor.order_status(result.broker_order_id)
    await executor.market_clock()
    await executor.inventory()
    assert executor.http is executor.client.http
    assert len(created) == 1, f"{len(created)} sessions for one executor"
    assert len(broker_fake.orders) == 8


async def test_stats_count_failed_requests_and_429s(
    broker_fake: FakeAlpacaBroker, make_broker_executor: Any
) -> None:
    executor = await make_broker_executor()
    assert executor.stats == {"request_errors": 0, "rate_limited": 0}
    broker_fake.inject("503", path_contains="/v1/calendar")
    broker_fake.inject("429", path_contains="/v1/calendar", retry_after="0.01")
    await executor.market_clock()  # both refused attempts retried, then it succeeds
    assert executor.stats == {"request_errors": 2, "rate_limited": 1}
    broker_fake.inject("500", method="POST")
    with pytest.raises(AmbiguousBrokerError):
        await executor.place_market_order(order("b-stats"))
    assert executor.stats["request_errors"] >= 3
    assert executor.stats["rate_limited"] == 1

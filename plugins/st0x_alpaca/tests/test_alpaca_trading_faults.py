"""Faults over real HTTP: rate limits, 5xx, timeouts, dropped connections, bad JSON, auth.

The invariant under every fault: an order POST is never sent twice by the
executor, and exactly one order exists at the fake when the POST reached it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from decimal import Decimal
from typing import Any

import pytest
from st0x_alpaca import AlpacaTradingConfig, AlpacaTradingExecutor
from st0x_testing.fake_alpaca import FakeAlpacaTrading

from st0x_liquidity import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    BrokerError,
    Direction,
    MarketOrder,
    OrderState,
    RetryableBrokerError,
    Secret,
    Symbol,
)

from .conftest import KEY, SECRET  # type: ignore[import-not-found]


def order(cid: str, qty: str = "1") -> MarketOrder:
    return MarketOrder(Symbol("AAPL"), Direction.BUY, Decimal(qty), cid, Decimal("100"))


def posts(fake: FakeAlpacaTrading) -> int:
    return sum(1 for method, path, _ in fake.requests if method == "POST" and path == "/v2/orders")


async def test_429_with_retry_after_is_waited_out(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor()
    fake.inject("429", method="POST", retry_after="0.3")
    started = time.monotonic()
    update = await executor.place_market_order(order("rl-1"))
    assert time.monotonic() - started >= 0.28
    assert update.state is OrderState.SUBMITTED
    assert len(fake.orders) == 1 and posts(fake) == 2


async def test_429_exhausted_is_retryable_with_the_wait(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor(max_attempts=2)
    fake.inject("429", path_contains="/v2/orders/", times=5, retry_after="0.05")
    placed = await executor.place_market_order(order("rl-2"))
    with pytest.raises(RetryableBrokerError) as caught:
        await executor.order_status(placed.broker_order_id)
    assert caught.value.retry_after == pytest.approx(0.05)
    assert not isinstance(caught.value, AmbiguousBrokerError)


async def test_5xx_on_reads_is_retried_with_backoff(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor()
    placed = await executor.place_market_order(order("5xx-1"))
    fake.inject("500", path_contains="/v2/orders/", times=2)
    update = await executor.order_status(placed.broker_order_id)
    assert update.broker_order_id == placed.broker_order_id


async def test_5xx_on_reads_exhausted_is_retryable(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor(max_attempts=3)
    fake.inject("503", path_contains="/v2/clock", times=3)
    with pytest.raises(RetryableBrokerError, match="HTTP 503"):
        await executor.market_clock()


async def test_5xx_on_order_post_is_never_resent(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor(resolve_attempts=2)
    fake.inject("500", method="POST")
    with pytest.raises(AmbiguousBrokerError, match="no order with client_order_id amb-1"):
        await executor.place_market_order(order("amb-1"))
    assert posts(fake) == 1 and not fake.orders
    # The engine's recovery asks before placing again: nothing there, so it may place.
    assert await executor.find_order("amb-1", order("amb-1")) is None


@pytest.mark.parametrize("kind", ["drop_after", "slow_after", "malformed_after"])
async def test_lost_answer_after_the_order_exists_is_resolved_by_lookup(
    fake: FakeAlpacaTrading, make_executor: Any, kind: str
) -> None:
    executor = await make_executor(timeout=0.3)
    fake.inject(kind, method="POST", delay=1.0)
    update = await executor.place_market_order(order(f"lost-{kind}"))
    created = fake.order_by_client_id(f"lost-{kind}")
    assert created is not None and update.broker_order_id == created.id
    assert posts(fake) == 1 and len(fake.orders) == 1


@pytest.mark.parametrize("kind", ["drop", "slow", "malformed"])
async def test_lost_answer_before_the_order_exists(
    fake: FakeAlpacaTrading, make_executor: Any, kind: str
) -> None:
    executor = await make_executor(timeout=0.3, resolve_attempts=1)
    fake.inject(kind, method="POST", delay=1.0)
    with pytest.raises(AmbiguousBrokerError):
        await executor.place_market_order(order(f"gone-{kind}"))
    assert posts(fake) == 1
    await asyncio.sleep(0.8 if kind == "slow" else 0)
    # Placing again with the same client_order_id can only ever create one order.
    await executor.place_market_order(order(f"gone-{kind}"))
    assert len([o for o in fake.orders.values() if o.client_order_id == f"gone-{kind}"]) == 1


async def test_dropped_connection_on_reads_is_retried(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor()
    fake.inject("drop", path_contains="/v2/positions")
    fake.inject("malformed", path_contains="/v2/account")
    inventory = await executor.inventory()
    assert inventory.cash == Decimal("100000")


async def test_connection_refused_is_retryable_not_ambiguous() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = AlpacaTradingConfig(
        api_key=Secret(KEY),
        api_secret=Secret(SECRET),
        base_url=f"http://127.0.0.1:{port}",
        max_attempts=2,
        backoff_initial=0.01,
    )
    executor = AlpacaTradingExecutor(config)
    try:
        with pytest.raises(RetryableBrokerError) as caught:
            await executor.place_market_order(order("refused-1"))
        assert not isinstance(caught.value, AmbiguousBrokerError)
        assert "cannot connect" in str(caught.value)
    finally:
        await executor.close()


async def test_bad_credentials_need_an_operator(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    with pytest.raises(AuthenticationRequiredError, match="HTTP 401"):
        await make_executor(api_secret=Secret("wrong-secret"))
    fake.auth_failure_status = 403
    with pytest.raises(AuthenticationRequiredError, match="forbidden"):
        await make_executor(api_key=Secret("PKWRONG"))


async def test_secrets_never_reach_logs_or_errors(
    fake: FakeAlpacaTrading, make_executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    executor = await make_executor(max_attempts=2, resolve_attempts=1)
    messages: list[str] = [repr(executor.config), str(executor.config)]
    fake.inject("500", method="POST")
    fake.inject("raw", status=422, body=f'{{"code": 1, "message": "echo {SECRET} {KEY}"}}'.encode())
    for cid in ("sec-1", "sec-2"):
        try:
            await executor.place_market_order(order(cid))
        except BrokerError as exc:
            messages.append(str(exc))
    fake.auth_failure_status = 401
    try:
        await make_executor(api_secret=Secret(SECRET + "x"))
    except BrokerError as exc:
        messages.append(str(exc))
    text = "\n".join(messages + [r.getMessage() for r in caplog.records])
    assert "echo" in text  # the broker's message did reach the error ...
    assert SECRET not in text and KEY not in text  # ... with the secrets scrubbed


async def test_client_rate_limiter_keeps_under_the_servers_limit(make_executor: Any) -> None:
    server = FakeAlpacaTrading(key_id=KEY, secret_key=SECRET, rate_limit=10, rate_window=1.0)
    await server.start()
    try:
        executor = await make_executor(
            base_url=server.base_url, rate_limit_per_minute=420, rate_limit_burst=3
        )
        started = time.monotonic()
        await asyncio.gather(*(executor.market_clock() for _ in range(20)))
        elapsed = time.monotonic() - started
    finally:
        await server.stop()
    assert server.rate_limited == 0
    assert elapsed >= 2.0  # 1 + 20 requests at 7/s after a burst of 3


async def test_server_rate_limit_is_absorbed_without_errors(make_executor: Any) -> None:
    server = FakeAlpacaTrading(key_id=KEY, secret_key=SECRET, rate_limit=5, rate_window=1.0)
    await server.start()
    try:
        executor = await make_executor(
            base_url=server.base_url, rate_limit_per_minute=6000, rate_limit_burst=50
        )
        results = await asyncio.gather(
            *(executor.place_market_order(order(f"burst-{i}")) for i in range(12))
        )
    finally:
        await server.stop()
    assert len({r.broker_order_id for r in results}) == 12
    assert len(server.orders) == 12
    assert server.order_posts == 12  # refused requests never reached order handling


async def test_unreadable_order_answer_is_ambiguous_never_retryable(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    """A 200 whose order object cannot be read may hide a placed order."""
    executor = await make_executor(resolve_attempts=1)
    fake.inject("raw", method="POST", status=200, body=b'{"id": "not-a-uuid", "status": "new"}')
    with pytest.raises(AmbiguousBrokerError):
        await executor.place_market_order(order("odd-1"))
    assert posts(fake) == 1


async def test_rate_limit_headers_are_read_case_insensitively(make_executor: Any) -> None:
    from aiohttp import web

    async def clock(_request: web.Request) -> web.Response:
        return web.json_response(
            {"timestamp": "2024-01-01T00:00:00Z", "is_open": True,
             "next_open": "2024-01-02T14:30:00Z", "next_close": "2024-01-01T21:00:00Z"},
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 2)},
        )

    app = web.Application()
    app.router.add_get("/v2/clock", clock)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        executor = await make_executor(start=False, base_url=f"http://127.0.0.1:{port}")
        started = time.monotonic()
        await executor.market_clock()
        await executor.market_clock()  # waits for the announced reset
        assert time.monotonic() - started >= 0.9
    finally:
        await runner.cleanup()


async def test_stats_count_failed_requests_and_429s(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    executor = await make_executor()
    assert executor.stats == {"request_errors": 0, "rate_limited": 0}
    fake.inject("500", path_contains="/v2/clock")
    await executor.market_clock()  # retried, succeeds
    assert executor.stats == {"request_errors": 1, "rate_limited": 0}
    fake.inject("429", path_contains="/v2/clock", retry_after="0.01")
    await executor.market_clock()
    assert executor.stats == {"request_errors": 2, "rate_limited": 1}
    fake.inject("raw", path_contains="/v2/clock", status=400, body=b'{"message": "bad"}')
    with pytest.raises(BrokerError):
        await executor.market_clock()
    assert executor.stats == {"request_errors": 3, "rate_limited": 1}
    assert executor.stats is executor.http.stats


async def test_backoff_for_5xx_and_refused_connections_is_exponential_and_capped(
    fake: FakeAlpacaTrading,
) -> None:
    from st0x_alpaca.http import AlpacaHttp, HttpSettings

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    settings = HttpSettings(
        base_url=fake.base_url, max_attempts=7, backoff_initial=0.01, backoff_max=0.05
    )
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    http = AlpacaHttp(settings, lambda: headers, sleep=record)
    try:
        fake.inject("503", path_contains="/v2/clock", times=6)
        reply = await http.request("GET", "/v2/clock")  # the 7th attempt gets through
        assert reply.status == 200
    finally:
        await http.close()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = AlpacaHttp(
        HttpSettings(base_url=f"http://127.0.0.1:{port}", max_attempts=7, backoff_initial=0.01,
                     backoff_max=0.05),
        lambda: headers,
        sleep=record,
    )  # fmt: skip
    try:
        with pytest.raises(RetryableBrokerError, match="cannot connect"):
            await refused.request("GET", "/v2/clock")
    finally:
        await refused.close()

    assert len(waits) == 12  # six waits before each of the six retries, twice
    for attempt, wait in enumerate(waits):
        ceiling = min(0.05, 0.01 * 2 ** (attempt % 6))
        assert ceiling / 2 <= wait <= ceiling  # doubling, with jitter, never above the cap
    assert max(waits) <= 0.05

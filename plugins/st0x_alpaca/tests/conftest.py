"""Fixtures: a real fake Alpaca Trading API on 127.0.0.1:0 and executors talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from st0x_alpaca import AlpacaTradingConfig, AlpacaTradingExecutor
from st0x_testing.fake_alpaca import FakeAlpacaTrading

from st0x_liquidity import Secret

KEY = "PKTESTKEY0000000001"
SECRET = "s3cr3t-trading-value-0123456789"

FAST = {
    "timeout": 1.0,
    "connect_timeout": 0.5,
    "backoff_initial": 0.01,
    "backoff_max": 0.05,
    "retry_after_max": 2.0,
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpacaTrading]:
    server = FakeAlpacaTrading(key_id=KEY, secret_key=SECRET)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


ExecutorFactory = Callable[..., Awaitable[AlpacaTradingExecutor]]


@pytest.fixture
async def make_executor(
    fake: FakeAlpacaTrading,
) -> AsyncIterator[ExecutorFactory]:
    made: list[AlpacaTradingExecutor] = []

    async def make(start: bool = True, **overrides: Any) -> AlpacaTradingExecutor:
        settings: dict[str, Any] = {
            "api_key": Secret(KEY),
            "api_secret": Secret(SECRET),
            "base_url": fake.base_url,
            **FAST,
        }
        settings.update(overrides)
        executor = AlpacaTradingExecutor(AlpacaTradingConfig(**settings))
        made.append(executor)
        if start:
            await executor.start()
        return executor

    yield make
    for executor in made:
        await executor.close()

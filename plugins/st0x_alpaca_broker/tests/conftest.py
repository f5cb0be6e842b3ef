"""Fixtures: a fake Alpaca Broker API on 127.0.0.1:0 and executors talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from st0x_alpaca_broker import AlpacaBrokerConfig, AlpacaBrokerExecutor
from st0x_alpaca_broker.fake import ACCOUNT_ID, FakeAlpacaBroker

from st0x_liquidity import Secret

BROKER_KEY = "CKBROKERKEY00000001"
BROKER_SECRET = "broker-s3cr3t-value-9876543210"


@pytest.fixture
async def broker_fake() -> AsyncIterator[FakeAlpacaBroker]:
    server = FakeAlpacaBroker(key=BROKER_KEY, secret=BROKER_SECRET)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def make_broker_executor(
    broker_fake: FakeAlpacaBroker,
) -> AsyncIterator[Callable[..., Awaitable[AlpacaBrokerExecutor]]]:
    made: list[AlpacaBrokerExecutor] = []

    async def make(start: bool = True, **overrides: Any) -> AlpacaBrokerExecutor:
        settings: dict[str, Any] = {
            "api_key": Secret(BROKER_KEY),
            "api_secret": Secret(BROKER_SECRET),
            "account_id": ACCOUNT_ID,
            "base_url": broker_fake.base_url,
            "timeout": 1.0,
            "backoff_initial": 0.01,
            "backoff_max": 0.05,
            "retry_after_max": 3.0,
        }
        settings.update(overrides)
        clock = _now(settings)
        executor = AlpacaBrokerExecutor(AlpacaBrokerConfig(**settings), **clock)
        made.append(executor)
        if start:
            await executor.start()
        return executor

    yield make
    for executor in made:
        await executor.close()


def _now(settings: dict[str, Any]) -> dict[str, Any]:
    now = settings.pop("now", None)
    return {} if now is None else {"now": now}

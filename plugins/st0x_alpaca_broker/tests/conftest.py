"""Fixtures: a fake Alpaca Broker API on 127.0.0.1:0 and executors talking to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from st0x_alpaca.http import HttpSettings
from st0x_alpaca_broker import AlpacaBrokerConfig, AlpacaBrokerExecutor
from st0x_alpaca_broker.client import AlpacaBrokerClient
from st0x_alpaca_broker.custody import AlpacaCustodian
from st0x_testing.fake_alpaca_broker import ACCOUNT_ID, FakeAlpacaBroker

from st0x_liquidity import Secret

BROKER_KEY = "CKBROKERKEY00000001"
BROKER_SECRET = "broker-s3cr3t-value-9876543210"

T = TypeVar("T")


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


def custodian_for(fake: FakeAlpacaBroker) -> AlpacaCustodian:
    """The plugin's custodian (tokenization + USDC) talking to ``fake`` over HTTP."""
    settings = HttpSettings(
        base_url=fake.base_url,
        timeout=2.0,
        backoff_initial=0.01,
        backoff_max=0.05,
        retry_after_max=2.0,
    )
    client = AlpacaBrokerClient(settings, Secret(BROKER_KEY), Secret(BROKER_SECRET), ACCOUNT_ID)
    custodian = AlpacaCustodian(client, issuer="st0x", network="base")
    custodian.resolve_backoff = 0.01
    return custodian


@pytest.fixture
async def usdc_custodian(broker_fake: FakeAlpacaBroker) -> AsyncIterator[AlpacaCustodian]:
    custodian = custodian_for(broker_fake)
    try:
        yield custodian
    finally:
        await custodian.close()


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], what: str, deadline: float = 30.0
) -> T:
    """Poll ``probe`` until it returns something other than None (generous deadline)."""
    end = time.monotonic() + deadline
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)

"""Tests with st0x-liquidity-testing's fixtures: ``pip install st0x-liquidity-testing``,
then ask for them by name (no conftest, no import of the fixtures)."""

from decimal import Decimal

import aiohttp
import pytest
from st0x_testing.fake_alpaca import FakeAlpacaTrading
from st0x_testing.pytest_plugin import RunningDevnet
from st0x_testing.raindex_devnet import take

from st0x_liquidity import PositionStore

pytestmark = pytest.mark.asyncio  # pytest-asyncio's strict mode wants it


async def test_a_fresh_store_holds_the_lease(st0x_store: PositionStore) -> None:
    await st0x_store.verify_lease()  # what the engine's store does before each write
    assert await st0x_store.positions() == []


async def test_the_fake_alpaca_takes_an_order(st0x_fake_alpaca: FakeAlpacaTrading) -> None:
    fake = st0x_fake_alpaca
    auth = {"APCA-API-KEY-ID": fake.key_id, "APCA-API-SECRET-KEY": fake.secret_key}
    order = {"symbol": "AAPL", "qty": "1.5", "side": "buy", "type": "market",
             "time_in_force": "day", "client_order_id": "example-1"}  # fmt: skip
    async with (
        aiohttp.ClientSession(headers=auth) as http,
        http.post(f"{fake.base_url}/v2/orders", json=order) as reply,
    ):
        assert reply.status == 200
    [placed] = fake.orders.values()
    assert (placed.client_order_id, placed.qty) == ("example-1", Decimal("1.5"))


async def test_a_taker_fills_the_devnet_orderbook(st0x_devnet: RunningDevnet) -> None:
    # The maker buys 2 tAAPL: the fill a raindex fill source sees (take raises on a revert).
    receipt = await take(st0x_devnet.chain, st0x_devnet.contracts, "AAPL", True, Decimal(2))
    assert receipt["logs"]
    assert st0x_devnet.contracts.orderbook in st0x_devnet.config_toml("bot.sqlite")

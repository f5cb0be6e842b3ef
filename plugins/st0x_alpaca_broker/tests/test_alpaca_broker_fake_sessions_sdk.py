"""The fake Broker API's sessions, driven by the official SDK (alpaca-py's ``BrokerClient``).

The Broker API shares the Trading API fake's order rules; this checks the
account-scoped paths: an extended-hours limit order placed, filled and
cancelled, the 422 refusals, ``/v1/calendar`` (with and without the deprecated
``session_open`` / ``session_close``), the asset attributes and the account's
trade configuration with ``disable_overnight_trading``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from alpaca.broker.client import BrokerClient
from alpaca.broker.requests import LimitOrderRequest, MarketOrderRequest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import GetCalendarRequest
from st0x_testing.fake_alpaca import NEW_YORK
from st0x_testing.fake_alpaca_broker import ACCOUNT_ID, FakeAlpacaBroker

KEY, SECRET = "CKSESSIONS", "sessions-broker-secret"
T = TypeVar("T")
MONDAY = date(2026, 3, 9)


def ny(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(MONDAY, time(hour, minute), NEW_YORK)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpacaBroker]:
    async with FakeAlpacaBroker(key=KEY, secret=SECRET, market_open=None) as server:
        assert isinstance(server, FakeAlpacaBroker)
        server.set_price("AAPL", "190.25")
        server.positions["AAPL"] = Decimal(10)
        server.clock.set(ny(17, 30))
        yield server


@pytest.fixture
def client(fake: FakeAlpacaBroker) -> BrokerClient:
    return BrokerClient(KEY, SECRET, url_override=fake.base_url)


async def test_after_hours_limit_order_fill_and_cancel(
    client: BrokerClient, fake: FakeAlpacaBroker
) -> None:
    request = LimitOrderRequest(
        symbol="AAPL", qty=1.5, side=OrderSide.SELL, time_in_force=TimeInForce.DAY,
        limit_price=190.50, extended_hours=True, client_order_id="eh-sell-1",
    )
    order = await call(client.submit_order_for_account, ACCOUNT_ID, request)
    assert (order.status, order.type, order.extended_hours) == (OrderStatus.NEW, "limit", True)
    read = await call(client.get_order_for_account_by_id, ACCOUNT_ID, order.id)
    assert read.status == OrderStatus.NEW  # 190.25 < 190.50: a sell waits
    fake.set_price("AAPL", "190.60")
    filled = await call(client.get_order_for_account_by_client_id, ACCOUNT_ID, "eh-sell-1")
    assert filled.status == OrderStatus.FILLED and filled.filled_avg_price == "190.6"
    assert fake.positions["AAPL"] == Decimal("8.5")

    other = await call(
        client.submit_order_for_account,
        ACCOUNT_ID,
        request.model_copy(update={"client_order_id": "eh-sell-2", "limit_price": 199.0}),
    )
    await call(client.cancel_order_for_account_by_id, ACCOUNT_ID, other.id)
    gone = await call(client.get_order_for_account_by_id, ACCOUNT_ID, other.id)
    assert gone.status == OrderStatus.CANCELED
    with pytest.raises(APIError) as caught:
        await call(client.cancel_order_for_account_by_id, ACCOUNT_ID, other.id)
    assert caught.value.status_code == 422

    with pytest.raises(APIError) as caught:
        await call(
            client.submit_order_for_account,
            ACCOUNT_ID,
            MarketOrderRequest(
                symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                extended_hours=True,
            ),
        )
    assert caught.value.status_code == 422 and int(caught.value.code) == 42210000
    fake.clock.set(ny(20))
    assert fake.orders[str(order.id)].status == "filled"


async def test_calendar_assets_and_configuration(
    client: BrokerClient, fake: FakeAlpacaBroker
) -> None:
    raw = BrokerClient(KEY, SECRET, url_override=fake.base_url, raw_data=True)
    [day] = await call(raw.get_calendar, GetCalendarRequest(start=MONDAY, end=MONDAY))
    assert (day["session_open"], day["session_close"]) == ("0400", "2000")
    fake.calendar_session_fields = False  # deprecated on the Broker API
    [day] = await call(raw.get_calendar, GetCalendarRequest(start=MONDAY, end=MONDAY))
    assert "session_open" not in day and day["open"] == "09:30"
    [model] = await call(client.get_calendar, GetCalendarRequest(start=MONDAY, end=MONDAY))
    assert model.close.hour == 16

    fake.set_eligibility("AAPL", overnight=True, halted=True)
    asset = await call(client.get_asset, "AAPL")
    assert {"overnight_tradable", "overnight_halted"} <= set(asset.attributes or [])

    config = await call(raw.get_trade_configuration_for_account, ACCOUNT_ID)
    assert config["disable_overnight_trading"] is False
    fake.disable_overnight_trading = True
    config = await call(raw.get_trade_configuration_for_account, ACCOUNT_ID)
    assert config["disable_overnight_trading"] is True
    model_config = await call(client.get_trade_configuration_for_account, ACCOUNT_ID)
    assert model_config.fractional_trading is True

"""The fake Broker API driven by the official SDK (alpaca-py's ``BrokerClient``).

Nothing is patched but the base URL (``url_override``); alpaca-py's models
validate every answer (``TradeAccount`` with all its required fields). The
tokenization calls, which alpaca-py does not cover, are sent as plain HTTP and
checked against Alpaca's reference (required enums, 400 for an insufficient
position, ``Idempotency-Key`` replays and conflicts).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import aiohttp
import pytest
from alpaca.broker.client import BrokerClient
from alpaca.broker.models import TradeAccount
from alpaca.broker.requests import MarketOrderRequest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest
from st0x_testing.fake_alpaca_broker import ACCOUNT_ID, FakeAlpacaBroker

KEY, SECRET = "CKSDKTEST", "sdk-broker-secret"
WALLET = "0x1234567890abcdef1234567890abcdef12345678"
T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpacaBroker]:
    async with FakeAlpacaBroker(key=KEY, secret=SECRET) as server:
        assert isinstance(server, FakeAlpacaBroker)
        server.prices["AAPL"] = Decimal("190.25")
        server.positions["AAPL"] = Decimal(10)
        yield server


@pytest.fixture
def client(fake: FakeAlpacaBroker) -> BrokerClient:
    return BrokerClient(KEY, SECRET, url_override=fake.base_url)


def error_of(exc: APIError) -> tuple[int, int, str]:
    assert exc.status_code is not None
    return exc.status_code, int(exc.code), str(exc.message)


async def test_clock_calendar_account(client: BrokerClient, fake: FakeAlpacaBroker) -> None:
    clock = await call(client.get_clock)
    assert clock.is_open is True
    days = await call(
        client.get_calendar, GetCalendarRequest(start=date(2022, 5, 16), end=date(2022, 5, 17))
    )
    assert [d.date for d in days] == [date(2022, 5, 16), date(2022, 5, 17)]
    everything = await call(client.get_calendar)
    assert everything[0].date.year == 1970 and everything[-1].date.year == 2029

    account = await call(client.get_trade_account_by_id, ACCOUNT_ID)
    assert isinstance(account, TradeAccount)
    assert account.id == UUID(ACCOUNT_ID) and account.status == "ACTIVE"
    assert Decimal(str(account.long_market_value)) == Decimal("1902.5")
    for field in (
        "last_long_market_value", "last_short_market_value", "last_cash",
        "last_initial_margin", "last_regt_buying_power", "last_buying_power",
    ):
        assert getattr(account, field) is not None, field
    with pytest.raises(APIError) as caught:
        await call(client.get_trade_account_by_id, UUID(int=1))
    assert error_of(caught.value)[:2] == (404, 40410000)


async def test_positions_asset_orders_cancel(client: BrokerClient, fake: FakeAlpacaBroker) -> None:
    fake.usdc = Decimal(50)
    positions = await call(client.get_all_positions_for_account, ACCOUNT_ID)
    assert [(p.symbol, p.qty) for p in positions] == [("AAPL", "10"), ("USDCUSD", "50")]
    one = await call(client.get_open_position_for_account, ACCOUNT_ID, "AAPL")
    assert one.qty == "10" and one.market_value == "1902.5"
    with pytest.raises(APIError) as caught:
        await call(client.get_open_position_for_account, ACCOUNT_ID, "TSLA")
    assert error_of(caught.value) == (404, 40410000, "position does not exist")
    asset = await call(client.get_asset, "AAPL")
    assert asset.symbol == "AAPL" and asset.id == one.asset_id

    fake.default_script = (("accepted", Decimal(0)), ("filled", Decimal(1)))
    by_qty = await call(
        client.submit_order_for_account,
        ACCOUNT_ID,
        MarketOrderRequest(
            symbol="AAPL", qty=2, side=OrderSide.SELL, time_in_force=TimeInForce.DAY,
            client_order_id="broker-sdk-qty",
        ),
    )
    by_notional = await call(
        client.submit_order_for_account,
        ACCOUNT_ID,
        MarketOrderRequest(
            symbol="AAPL", notional=100, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        ),
    )
    assert (by_qty.qty, by_notional.notional, by_notional.qty) == ("2", "100", None)
    got = await call(client.get_order_for_account_by_id, ACCOUNT_ID, by_qty.id)
    assert got.status == OrderStatus.FILLED and got.filled_avg_price == "190.25"
    got = await call(client.get_order_for_account_by_client_id, ACCOUNT_ID, "broker-sdk-qty")
    assert got.id == by_qty.id

    listed = await call(client.get_orders_for_account, ACCOUNT_ID)
    assert [o.id for o in listed] == [by_notional.id]  # open only, by default
    listed = await call(
        client.get_orders_for_account,
        ACCOUNT_ID,
        GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["AAPL"], side=OrderSide.SELL),
    )
    assert [o.id for o in listed] == [by_qty.id]

    # Cancelling an equity order is an ordinary cancel (204), not a fake-only refusal.
    assert await call(client.cancel_order_for_account_by_id, ACCOUNT_ID, by_notional.id) is None
    cancelled = await call(client.get_order_for_account_by_id, ACCOUNT_ID, by_notional.id)
    assert cancelled.status == OrderStatus.CANCELED
    with pytest.raises(APIError) as caught:
        await call(client.cancel_order_for_account_by_id, ACCOUNT_ID, by_qty.id)
    assert error_of(caught.value) == (422, 42210000, 'order is already in "filled" state')


def mint_body(**changes: Any) -> dict[str, Any]:
    body = {
        "underlying_symbol": "AAPL", "qty": "1.5", "issuer": "st0x", "network": "base",
        "wallet_address": WALLET,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def test_tokenization_mint_refuses_as_documented(fake: FakeAlpacaBroker) -> None:
    basic = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    url = f"{fake.base_url}/v1/accounts/{ACCOUNT_ID}/tokenization/mint"

    async with aiohttp.ClientSession(headers={"Authorization": basic}) as session:

        async def mint(body: dict[str, Any], key: str | None = None) -> tuple[int, Any, Any]:
            headers = {} if key is None else {"Idempotency-Key": key}
            async with session.post(url, json=body, headers=headers) as resp:
                return resp.status, await resp.json(), resp.headers

        for missing in ("issuer", "network", "wallet_address", "qty", "underlying_symbol"):
            status, error, _ = await mint(mint_body(**{missing: None}))
            assert status == 422 and set(error) == {"code", "message"}, missing
        for bad in ({"issuer": "nobody"}, {"network": "dogechain"}, {"qty": "-1"}):
            status, error, _ = await mint(mint_body(**bad))
            assert (status, error["code"]) == (422, 42210000), bad
        status, error, _ = await mint(mint_body(qty="11"))
        assert status == 400 and "insufficient position" in error["message"]
        assert fake.positions["AAPL"] == Decimal(10)

        status, first, _ = await mint(mint_body(), key="k-1")
        assert status == 200 and first["status"] == "pending"
        assert (first["issuer"], first["network"]) == ("st0x", "base")
        status, again, headers = await mint(mint_body(), key="k-1")
        assert status == 200 and again["tokenization_request_id"] == first["tokenization_request_id"]
        assert headers.get("Idempotent-Replayed") == "true"
        status, error, _ = await mint(mint_body(qty="2"), key="k-1")
        assert status == 422 and error["code"] == 42210000
        assert fake.positions["AAPL"] == Decimal("8.5")  # one mint only

        # A key whose request was refused cannot be replayed; a key > 128 chars is malformed.
        assert (await mint(mint_body(qty="99"), key="k-2"))[0] == 400
        assert (await mint(mint_body(qty="99"), key="k-2"))[0] == 400
        assert (await mint(mint_body(), key="x" * 129))[0] == 400
        assert len([r for r in fake.tokenization.values() if r["type"] == "mint"]) == 1

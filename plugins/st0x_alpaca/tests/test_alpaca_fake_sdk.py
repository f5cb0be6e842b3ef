"""The fake Trading API driven by the official SDK (alpaca-py's ``TradingClient``).

Nothing is patched but the base URL (``url_override``): every call goes over
real HTTP to the fake and every answer is validated by alpaca-py's own models.
alpaca-py is synchronous (``requests``), so its calls run in a worker thread
while the fake serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrdersRequest,
    MarketOrderRequest,
)
from st0x_testing.fake_alpaca import FakeAlpacaTrading

KEY, SECRET = "PKSDKTEST", "sdk-secret"
T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpacaTrading]:
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET) as server:
        assert isinstance(server, FakeAlpacaTrading)
        server.prices["AAPL"] = Decimal("190.25")
        yield server


@pytest.fixture
def client(fake: FakeAlpacaTrading) -> TradingClient:
    return TradingClient(KEY, SECRET, url_override=fake.base_url)


def error_of(exc: APIError) -> tuple[int, int, str]:
    assert exc.status_code is not None
    return exc.status_code, int(exc.code), str(exc.message)


async def test_clock_and_calendar(client: TradingClient) -> None:
    clock = await call(client.get_clock)
    assert clock.is_open is True and clock.next_close > clock.timestamp
    days = await call(
        client.get_calendar, GetCalendarRequest(start=date(2022, 5, 16), end=date(2022, 5, 22))
    )
    assert [d.date for d in days] == [date(2022, 5, 16) + timedelta(days=i) for i in range(5)]
    assert (days[0].open.hour, days[0].open.minute, days[0].close.hour) == (9, 30, 16)
    # Without dates Alpaca serves its whole calendar (1970 … 2029), not a 422.
    everything = await call(client.get_calendar)
    assert everything[0].date.year == 1970 and everything[-1].date.year == 2029
    assert len(everything) > 15_000


async def test_account_positions_and_assets(
    client: TradingClient, fake: FakeAlpacaTrading
) -> None:
    fake.positions["AAPL"] = Decimal("2.5")
    account = await call(client.get_account)
    assert account.status == "ACTIVE" and Decimal(str(account.cash)) == fake.cash
    assert Decimal(str(account.long_market_value)) == Decimal("2.5") * Decimal("190.25")
    [position] = await call(client.get_all_positions)
    assert (position.symbol, position.qty, position.side) == ("AAPL", "2.5", "long")
    one = await call(client.get_open_position, "AAPL")
    assert one.asset_id == position.asset_id
    by_id = await call(client.get_open_position, str(position.asset_id))
    assert by_id.symbol == "AAPL"
    with pytest.raises(APIError) as caught:
        await call(client.get_open_position, "MSFT")
    assert error_of(caught.value) == (404, 40410000, "position does not exist")

    asset = await call(client.get_asset, "AAPL")
    assert asset.symbol == "AAPL" and asset.fractionable and asset.tradable
    assert asset.id == position.asset_id
    fake.non_fractionable.add("BRK.A")
    assert (await call(client.get_asset, "BRK.A")).fractionable is False
    fake.unknown_symbols.add("ZZZZQX")
    with pytest.raises(APIError) as caught:
        await call(client.get_asset, "ZZZZQX")
    assert error_of(caught.value) == (404, 40410000, "asset not found for ZZZZQX")


async def test_orders_by_quantity_and_notional_listed_found_and_cancelled(
    client: TradingClient, fake: FakeAlpacaTrading
) -> None:
    by_qty = await call(
        client.submit_order,
        MarketOrderRequest(
            symbol="AAPL", qty=1.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            client_order_id="sdk-qty-1",
        ),
    )
    assert isinstance(by_qty, Order)
    assert (by_qty.qty, by_qty.notional, by_qty.status) == ("1.5", None, OrderStatus.NEW)
    by_notional = await call(
        client.submit_order,
        MarketOrderRequest(
            symbol="AAPL", notional=25, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            client_order_id="sdk-notional-1",
        ),
    )
    assert (by_notional.qty, by_notional.notional) == (None, "25")
    fake.default_script = (("accepted", Decimal(0)),)
    sold = await call(
        client.submit_order,
        MarketOrderRequest(symbol="MSFT", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY),
    )

    # By id (each read moves the fake's order one step) and by client order id.
    got = await call(client.get_order_by_id, by_qty.id)
    assert got.id == by_qty.id and got.status == OrderStatus.ACCEPTED
    got = await call(client.get_order_by_client_id, "sdk-notional-1")
    assert got.id == by_notional.id
    for _ in range(3):
        filled = await call(client.get_order_by_id, by_notional.id)
    assert filled.status == OrderStatus.FILLED and filled.notional == "25"
    assert Decimal(str(filled.filled_qty)) == (Decimal(25) / Decimal("190.25")).quantize(
        Decimal("1e-9"), rounding="ROUND_DOWN"
    )

    # Listing: open by default, closed, all, filters.
    open_orders = await call(client.get_orders)
    assert {o.id for o in open_orders} == {by_qty.id, sold.id}
    closed = await call(client.get_orders, GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.id for o in closed] == [by_notional.id]
    everything = await call(client.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert [o.id for o in everything] == [sold.id, by_notional.id, by_qty.id]  # newest first
    oldest = await call(
        client.get_orders,
        GetOrdersRequest(status=QueryOrderStatus.ALL, direction="asc", limit=1),
    )
    assert [o.id for o in oldest] == [by_qty.id]
    sells = await call(
        client.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL, side=OrderSide.SELL)
    )
    assert [o.id for o in sells] == [sold.id]
    msft = await call(
        client.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["MSFT", "TSLA"])
    )
    assert [o.id for o in msft] == [sold.id]
    later = await call(
        client.get_orders,
        GetOrdersRequest(status=QueryOrderStatus.ALL, after=by_notional.submitted_at),
    )
    assert [o.id for o in later] == [sold.id]
    earlier = await call(
        client.get_orders,
        GetOrdersRequest(status=QueryOrderStatus.ALL, until=by_notional.submitted_at),
    )
    assert [o.id for o in earlier] == [by_qty.id]

    # Cancel: 204 for a live order; Alpaca's 422 for one that already ended; 404 unknown.
    assert await call(client.cancel_order_by_id, sold.id) is None
    cancelled = await call(client.get_order_by_id, sold.id)
    assert cancelled.status == OrderStatus.CANCELED and cancelled.canceled_at is not None
    with pytest.raises(APIError) as caught:
        await call(client.cancel_order_by_id, by_notional.id)
    assert error_of(caught.value) == (422, 42210000, 'order is already in "filled" state')
    with pytest.raises(APIError) as caught:
        await call(client.cancel_order_by_id, UUID(int=7))
    assert error_of(caught.value)[:2] == (404, 40410000)


async def test_refusals_have_alpacas_shape(client: TradingClient, fake: FakeAlpacaTrading) -> None:
    fake.non_fractionable.add("BRK.A")
    with pytest.raises(APIError) as caught:
        await call(
            client.submit_order,
            MarketOrderRequest(
                symbol="BRK.A", notional=5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            ),
        )
    assert error_of(caught.value)[:2] == (422, 40010001)
    with pytest.raises(APIError) as caught:
        await call(
            client.submit_order,
            MarketOrderRequest(
                symbol="AAPL", notional=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            ),
        )
    assert error_of(caught.value) == (403, 40310000, "cost basis must be >= 1")
    await call(
        client.submit_order,
        MarketOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            client_order_id="dup",
        ),
    )
    with pytest.raises(APIError) as caught:
        await call(
            client.submit_order,
            MarketOrderRequest(
                symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                client_order_id="dup",
            ),
        )
    assert error_of(caught.value) == (422, 40010001, "client_order_id must be unique")
    bad = TradingClient(KEY, "wrong", url_override=fake.base_url)
    with pytest.raises(APIError) as caught:
        await call(bad.get_account)
    assert error_of(caught.value) == (401, 40110000, "request is not authorized")

"""The fake Trading API's sessions, driven by the official SDK (alpaca-py's ``TradingClient``).

The fake follows its calendar (``market_open=None``) on a clock the test moves:
limit orders in pre-market, regular, after-hours and overnight; Alpaca's 422
refusals (market + ``extended_hours``, sub-penny limits); a plain market order
outside regular hours queued as ``accepted``; ``day`` orders ending at 20:00
(an overnight one at 20:00 of its trade date); cancel, pending cancel and
partial fills; calendar, clock, asset attributes and account configuration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import AccountConfiguration, Order
from alpaca.trading.requests import GetCalendarRequest, LimitOrderRequest, MarketOrderRequest
from st0x_testing.fake_alpaca import NEW_YORK, FakeAlpacaTrading

KEY, SECRET = "PKSESSIONS", "sessions-secret"
T = TypeVar("T")
MONDAY = date(2026, 3, 9)
TUESDAY = MONDAY + timedelta(days=1)


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), NEW_YORK)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpacaTrading]:
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET, market_open=None) as server:
        assert isinstance(server, FakeAlpacaTrading)
        server.set_price("AAPL", "190.25")
        server.clock.set(ny(MONDAY, 5))
        yield server


@pytest.fixture
def client(fake: FakeAlpacaTrading) -> TradingClient:
    return TradingClient(KEY, SECRET, url_override=fake.base_url)


def limit(
    side: OrderSide, price: float, qty: float = 2, *, extended: bool = True, cid: str | None = None
) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol="AAPL",
        qty=qty,
        side=side,
        time_in_force=TimeInForce.DAY,
        limit_price=price,
        extended_hours=extended,
        client_order_id=cid,
    )


def error_of(exc: APIError) -> tuple[int, int, str]:
    assert exc.status_code is not None
    return exc.status_code, int(exc.code), str(exc.message)


async def test_limit_orders_trade_in_every_session_the_symbol_is_eligible_for(
    client: TradingClient, fake: FakeAlpacaTrading
) -> None:
    sessions = {
        "pre": ny(MONDAY, 5),
        "regular": ny(MONDAY, 11),
        "post": ny(MONDAY, 17),
        "overnight": ny(MONDAY, 21),
    }
    for name, moment in sessions.items():
        fake.clock.set(moment)
        assert fake.session() == name
        order = await call(client.submit_order, limit(OrderSide.BUY, 190.30, cid=f"buy-{name}"))
        assert isinstance(order, Order)
        assert (order.status, order.extended_hours, order.limit_price) == (
            OrderStatus.NEW, True, "190.3"
        )
        read = await call(client.get_order_by_id, order.id)
        assert read.status == OrderStatus.FILLED and read.filled_avg_price == "190.25", name
        assert fake.orders[str(order.id)].session == name
    assert fake.positions["AAPL"] == 8

    # A buy above the market waits; a sell below it waits; each fills once the price crosses.
    fake.clock.set(ny(TUESDAY, 6))
    buy = await call(client.submit_order, limit(OrderSide.BUY, 190.00))
    sell = await call(client.submit_order, limit(OrderSide.SELL, 191.00))
    assert (await call(client.get_order_by_id, buy.id)).status == OrderStatus.NEW
    assert (await call(client.get_order_by_id, sell.id)).status == OrderStatus.NEW
    fake.set_price("AAPL", "190.00")
    assert (await call(client.get_order_by_id, buy.id)).status == OrderStatus.FILLED
    assert (await call(client.get_order_by_id, sell.id)).status == OrderStatus.NEW
    fake.set_price("AAPL", "191.50")
    sold = await call(client.get_order_by_id, sell.id)
    assert sold.status == OrderStatus.FILLED and sold.filled_avg_price == "191.5"


async def test_overnight_needs_the_symbol_and_the_account(
    client: TradingClient, fake: FakeAlpacaTrading
) -> None:
    fake.clock.set(ny(MONDAY, 22))
    fake.set_eligibility("AAPL", overnight=False)
    waiting = await call(client.submit_order, limit(OrderSide.BUY, 191.00))
    assert waiting.status == OrderStatus.ACCEPTED
    assert (await call(client.get_order_by_id, waiting.id)).status == OrderStatus.ACCEPTED
    fake.set_eligibility("AAPL", overnight=True, halted=True)
    assert (await call(client.get_order_by_id, waiting.id)).status == OrderStatus.ACCEPTED
    fake.set_eligibility("AAPL", overnight=True)
    config = await call(client.get_account_configurations)
    assert isinstance(config, AccountConfiguration)
    raw = TradingClient(KEY, SECRET, url_override=fake.base_url, raw_data=True)
    assert (await call(raw.get_account_configurations))["disable_overnight_trading"] is False
    async with aiohttp.ClientSession() as http, http.patch(
        f"{fake.base_url}/v2/account/configurations",
        json={"disable_overnight_trading": True},
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
    ) as answer:
        assert answer.status == 200
        assert (await answer.json())["disable_overnight_trading"] is True
    assert (await call(client.get_order_by_id, waiting.id)).status == OrderStatus.ACCEPTED
    fake.disable_overnight_trading = False
    assert (await call(client.get_order_by_id, waiting.id)).status == OrderStatus.FILLED

    asset = await call(raw.get_asset, "AAPL")
    assert "overnight_tradable" in asset["attributes"]
    fake.set_eligibility("MSFT", fractional_eh=False, overnight=False)
    assert (await call(client.get_asset, "MSFT")).attributes == ["has_options"]


async def test_refusals_follow_alpaca(client: TradingClient, fake: FakeAlpacaTrading) -> None:
    with pytest.raises(APIError) as caught:
        await call(
            client.submit_order,
            MarketOrderRequest(
                symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                extended_hours=True,
            ),
        )
    assert error_of(caught.value) == (
        422, 42210000, "extended hours order must be DAY or GTC limit orders"
    )
    with pytest.raises(APIError) as caught:
        await call(
            client.submit_order,
            LimitOrderRequest(
                symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.IOC,
                limit_price=190, extended_hours=True,
            ),
        )
    assert error_of(caught.value)[1] == 42210000
    with pytest.raises(APIError) as caught:
        await call(client.submit_order, limit(OrderSide.BUY, 290.123))
    assert error_of(caught.value) == (
        422,
        42210000,
        "invalid limit_price 290.123. sub-penny increment does not fulfill minimum pricing criteria",
    )
    fake.set_price("PENNY", "0.5")
    cheap = LimitOrderRequest(
        symbol="PENNY", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
        limit_price=0.12345, extended_hours=True,
    )
    with pytest.raises(APIError) as caught:
        await call(client.submit_order, cheap)
    assert error_of(caught.value)[:2] == (422, 42210000)
    placed = await call(client.submit_order, cheap.model_copy(update={"limit_price": 0.1234}))
    assert placed.limit_price == "0.1234"
    # Fractional outside regular hours needs fractional_eh_enabled.
    fake.set_eligibility("AAPL", fractional_eh=False)
    with pytest.raises(APIError) as caught:
        await call(client.submit_order, limit(OrderSide.BUY, 190.30, qty=0.5))
    assert error_of(caught.value)[0] == 422
    assert fake.market_orders_outside_regular() == []


async def test_a_market_order_outside_regular_hours_is_queued_for_the_open(
    client: TradingClient, fake: FakeAlpacaTrading
) -> None:
    fake.clock.set(ny(MONDAY, 17))
    queued = await call(
        client.submit_order,
        MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY),
    )
    assert queued.status == OrderStatus.ACCEPTED
    for _ in range(4):
        read = await call(client.get_order_by_id, queued.id)
    assert read.status == OrderStatus.ACCEPTED and read.filled_qty == "0"
    assert [o.id for o in fake.market_orders_outside_regular()] == [str(queued.id)]
    fake.clock.set(ny(TUESDAY, 9, 31))
    for _ in range(3):
        read = await call(client.get_order_by_id, queued.id)
    assert read.status == OrderStatus.FILLED


async def test_day_orders_end_with_their_trade_date(
    client: TradingClient, fake: FakeAlpacaTrading
) -> None:
    fake.set_price("AAPL", "200")  # nothing fills
    fake.clock.set(ny(MONDAY, 17))
    after_hours = await call(client.submit_order, limit(OrderSide.BUY, 190.00))
    regular_only = await call(client.submit_order, limit(OrderSide.BUY, 190.00, extended=False))
    assert regular_only.status == OrderStatus.ACCEPTED  # waits for Tuesday's open
    fake.clock.set(ny(MONDAY, 19, 59))
    assert (await call(client.get_order_by_id, after_hours.id)).status == OrderStatus.NEW
    fake.clock.advance(60)
    ended = await call(client.get_order_by_id, after_hours.id)
    assert ended.status == OrderStatus.EXPIRED and ended.expired_at == ny(MONDAY, 20)

    # Entered overnight (Monday 21:00): Tuesday's order, live until Tuesday 20:00.
    fake.clock.set(ny(MONDAY, 21))
    overnight = await call(client.submit_order, limit(OrderSide.BUY, 190.00))
    for moment in (ny(TUESDAY, 5), ny(TUESDAY, 12), ny(TUESDAY, 19, 59)):
        fake.clock.set(moment)
        assert (await call(client.get_order_by_id, overnight.id)).status == OrderStatus.NEW
    assert (await call(client.get_order_by_id, regular_only.id)).status == OrderStatus.EXPIRED
    fake.expiry_status = "done_for_day"
    fake.clock.set(ny(TUESDAY, 20))
    assert (await call(client.get_order_by_id, overnight.id)).status == OrderStatus.DONE_FOR_DAY


async def test_cancel_pending_cancel_and_partial_fills(
    client: TradingClient, fake: FakeAlpacaTrading
) -> None:
    fake.partial_fill = Decimal("0.4")
    order = await call(client.submit_order, limit(OrderSide.BUY, 190.30, qty=5))
    first = await call(client.get_order_by_id, order.id)
    assert (first.status, first.filled_qty) == (OrderStatus.PARTIALLY_FILLED, "2")
    fake.set_price("AAPL", "195")
    fake.cancel_pending = True
    await call(client.cancel_order_by_id, order.id)
    assert fake.orders[str(order.id)].status == "pending_cancel"
    with pytest.raises(APIError) as caught:
        await call(client.cancel_order_by_id, order.id)
    assert error_of(caught.value) == (422, 42210000, 'order is already in "pending_cancel" state')
    done = await call(client.get_order_by_id, order.id)
    assert (done.status, done.filled_qty) == (OrderStatus.CANCELED, "2")
    with pytest.raises(APIError) as caught:
        await call(client.cancel_order_by_id, order.id)
    assert error_of(caught.value) == (422, 42210000, 'order is already in "canceled" state')

    # The price crossed before the cancel landed: the fill wins, the cancel is refused.
    fake.partial_fill = Decimal(1)
    fake.cancel_pending = False
    raced = await call(client.submit_order, limit(OrderSide.BUY, 190.00, qty=1))
    fake.set_price("AAPL", "189.99")
    with pytest.raises(APIError) as caught:
        await call(client.cancel_order_by_id, raced.id)
    assert error_of(caught.value) == (422, 42210000, 'order is already in "filled" state')


async def test_calendar_clock_and_the_http_clock_control(
    client: TradingClient, fake: FakeAlpacaTrading
) -> None:
    good_friday, half_day = date(2026, 4, 3), date(2026, 11, 27)
    fake.holidays.add(good_friday)
    fake.half_days[half_day] = time(13, 0)
    raw = TradingClient(KEY, SECRET, url_override=fake.base_url, raw_data=True)
    days = await call(
        raw.get_calendar, GetCalendarRequest(start=date(2026, 4, 2), end=date(2026, 4, 6))
    )
    assert [d["date"] for d in days] == ["2026-04-02", "2026-04-06"]
    assert (days[0]["session_open"], days[0]["session_close"]) == ("0400", "2000")
    [short] = await call(
        client.get_calendar, GetCalendarRequest(start=half_day, end=half_day)
    )
    assert (short.open.hour, short.close.hour) == (9, 13)
    [short_raw] = await call(raw.get_calendar, GetCalendarRequest(start=half_day, end=half_day))
    assert short_raw["session_close"] == "1700"
    fake.calendar_session_fields = False
    [bare] = await call(raw.get_calendar, GetCalendarRequest(start=half_day, end=half_day))
    assert "session_open" not in bare and bare["close"] == "13:00"

    clock = await call(client.get_clock)  # Monday 05:00: pre-market is not "open"
    assert clock.is_open is False and clock.next_open == ny(MONDAY, 9, 30)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{fake.base_url}/_control/clock", json={"now": ny(MONDAY, 10).isoformat()}
        ) as answer:
            assert answer.status == 200
        clock = await call(client.get_clock)
        assert clock.is_open is True and clock.next_close == ny(MONDAY, 16)
        async with http.post(f"{fake.base_url}/_control/clock", json={"advance": 6 * 3600}):
            pass
        assert fake.session() == "post"
        async with http.post(f"{fake.base_url}/_control/clock", json={"when": "?"}) as answer:
            assert answer.status == 400
        async with http.post(
            f"{fake.base_url}/_control/price", json={"symbol": "AAPL", "price": "180"}
        ) as answer:
            assert answer.status == 200
    assert fake.price("AAPL") == Decimal(180)
    assert fake.now() == ny(MONDAY, 16).astimezone(UTC)


async def test_a_fake_in_a_child_process_is_moved_over_http(tmp_path: Any) -> None:
    """``python -m st0x_testing.fake_alpaca --calendar``: the clock and prices move
    over HTTP; alpaca-py sees the session change."""
    import socket
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "st0x_testing.fake_alpaca", "--port", str(port),
        "--key", KEY, "--secret", SECRET, "--calendar",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        base_url = f"http://127.0.0.1:{port}"
        assert base_url in line.decode()
        client = TradingClient(KEY, SECRET, url_override=base_url)
        async with aiohttp.ClientSession() as http:
            for moment, is_open in ((ny(MONDAY, 8), False), (ny(MONDAY, 12), True)):
                async with http.post(
                    f"{base_url}/_control/clock", json={"now": moment.isoformat()}
                ) as answer:
                    assert answer.status == 200
                assert (await call(client.get_clock)).is_open is is_open
            async with http.post(
                f"{base_url}/_control/clock", json={"now": ny(MONDAY, 17).isoformat()}
            ):
                pass
            async with http.post(
                f"{base_url}/_control/price", json={"symbol": "AAPL", "price": "190.25"}
            ):
                pass
        order = await call(client.submit_order, limit(OrderSide.BUY, 190.30))
        assert order.status == OrderStatus.NEW
        assert (await call(client.get_order_by_id, order.id)).status == OrderStatus.FILLED
        with pytest.raises(APIError):
            await call(
                client.submit_order,
                MarketOrderRequest(
                    symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                    extended_hours=True,
                ),
            )
    finally:
        child.terminate()
        await child.wait()

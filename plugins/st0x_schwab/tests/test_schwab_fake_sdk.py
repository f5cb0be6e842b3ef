"""The fake Schwab driven by the official SDK (schwab-py).

schwab-py writes ``https://api.schwabapi.com`` into every URL, so the only
thing changed is the HTTP transport under its httpx/authlib clients: requests
for that host are sent to the fake instead. The OAuth login is schwab-py's own
(``get_auth_context`` and the token fetch of ``client_from_received_url``,
whose ``state`` check needs the redirect to carry the state back); the client
is built the way ``client_from_received_url(asyncio=True)`` builds it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc6749.errors import MismatchingStateException
from schwab.auth import TOKEN_ENDPOINT, TokenMetadata, get_auth_context
from schwab.client import AsyncClient
from schwab.orders.common import Session
from schwab.orders.equities import (
    equity_buy_limit,
    equity_buy_market,
    equity_sell_limit,
    equity_sell_market,
)
from schwab.utils import Utils
from st0x_testing.fake_schwab import FakeSchwab

SCHWAB_HOST = "api.schwabapi.com"


class ToFake(httpx.AsyncBaseTransport):
    """Sends requests for Schwab's host to the fake; nothing else is touched."""

    def __init__(self, root: str) -> None:
        self.root = httpx.URL(root)
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == SCHWAB_HOST:
            request.url = request.url.copy_with(
                scheme=self.root.scheme, host=self.root.host, port=self.root.port
            )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSchwab]:
    server = FakeSchwab(  # real time: schwab-py computes its windows from the real clock
        accounts=(("12345678", "3A1B9C0FD2E4A6B8"), ("87654321", "7F6E5D4C3B2A1908")),
        always_open=True,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def browse(fake: FakeSchwab, url: str) -> str:
    """The browser: open the authorization URL, log in (the fake approves), land."""
    async with httpx.AsyncClient(transport=ToFake(fake.url)) as browser:
        answer = await browser.get(url, follow_redirects=False)
    assert answer.status_code == 302
    return answer.headers["location"]


async def login(fake: FakeSchwab) -> dict[str, Any]:
    """schwab-py's login: authorization URL with state, browser redirect, token fetch."""
    context = get_auth_context(fake.app_key, fake.redirect_uri)
    assert "state=" in context.authorization_url
    received = await browse(fake, context.authorization_url)
    assert f"state={context.state}" in received
    async with AsyncOAuth2Client(
        fake.app_key, redirect_uri=context.callback_url, transport=ToFake(fake.url)
    ) as oauth:
        token: dict[str, Any] = await oauth.fetch_token(
            TOKEN_ENDPOINT,
            authorization_response=received,
            client_id=fake.app_key,
            auth=(fake.app_key, fake.app_secret),
            state=context.state,
        )
    return token


@pytest.fixture
async def client(fake: FakeSchwab) -> AsyncIterator[AsyncClient]:
    token = await login(fake)
    written: list[Any] = []
    metadata = TokenMetadata(token, int(time.time()), lambda t, *a, **k: written.append(t))

    async def update_token(t: Any, *args: Any, **kwargs: Any) -> None:
        metadata.wrapped_token_write_func()(t, *args, **kwargs)

    session = AsyncOAuth2Client(
        fake.app_key,
        client_secret=fake.app_secret,
        token=token,
        token_endpoint=TOKEN_ENDPOINT,
        update_token=update_token,
        leeway=300,
        transport=ToFake(fake.url),
    )
    sdk = AsyncClient(fake.app_key, session, token_metadata=metadata)
    try:
        yield sdk
    finally:
        await sdk.close_async_session()


async def test_oauth_redirect_carries_the_state(fake: FakeSchwab) -> None:
    token = await login(fake)
    assert token["token_type"] == "Bearer" and token["access_token"] in fake.access_tokens
    # A redirect answering some other login is refused by schwab-py (authlib) itself.
    context = get_auth_context(fake.app_key, fake.redirect_uri)
    other = get_auth_context(fake.app_key, fake.redirect_uri)
    async with AsyncOAuth2Client(
        fake.app_key, redirect_uri=fake.redirect_uri, transport=ToFake(fake.url)
    ) as oauth:
        received = await browse(fake, other.authorization_url)
        with pytest.raises(MismatchingStateException):
            await oauth.fetch_token(
                TOKEN_ENDPOINT, authorization_response=received, client_id=fake.app_key,
                auth=(fake.app_key, fake.app_secret), state=context.state,
            )
    assert fake.token_grants == ["authorization_code"]


async def test_accounts_orders_market_hours_cancel(client: AsyncClient, fake: FakeSchwab) -> None:
    numbers = await client.get_account_numbers()
    assert numbers.status_code == 200
    assert numbers.json() == [
        {"accountNumber": n, "hashValue": h} for n, h in fake.accounts
    ]
    first, second = (h for _n, h in fake.accounts)
    fake.set_position("AAPL", 12)
    account = await client.get_account(first, fields=[client.Account.Fields.POSITIONS])
    assert account.status_code == 200
    [position] = account.json()["securitiesAccount"]["positions"]
    assert position["instrument"]["symbol"] == "AAPL" and position["longQuantity"] == 12.0
    everything = await client.get_accounts()
    assert [a["securitiesAccount"]["accountNumber"] for a in everything.json()] == [
        n for n, _h in fake.accounts
    ]

    placed = await client.place_order(first, equity_buy_market("AAPL", 3))
    assert placed.status_code == 201 and placed.content == b""
    order_id = Utils(client, first).extract_order_id(placed)
    assert order_id is not None and order_id in fake.orders
    fake.fill_prices["MSFT"] = Decimal("410.5")
    sold = await client.place_order(second, equity_sell_market("MSFT", 2))
    sold_id = Utils(client, second).extract_order_id(sold)

    got = await client.get_order(order_id, first)
    assert got.status_code == 200
    body = got.json()
    assert (body["orderId"], body["status"], body["accountNumber"]) == (order_id, "WORKING", 12345678)
    assert body["orderLegCollection"][0]["instrument"]["symbol"] == "AAPL"
    filled = (await client.get_order(sold_id, second)).json()
    assert filled["status"] == "FILLED" and filled["accountNumber"] == 87654321
    assert filled["orderActivityCollection"][0]["executionLegs"][0]["price"] == 410.5

    # The SDK's default window: 60 days back from its own clock, a moment before the fake's.
    mine = await client.get_orders_for_account(first)
    assert mine.status_code == 200, mine.text
    assert [o["orderId"] for o in mine.json()] == [order_id]
    linked = await client.get_orders_for_all_linked_accounts()
    assert linked.status_code == 200, linked.text
    assert {o["orderId"] for o in linked.json()} == {order_id, sold_id}
    only_filled = await client.get_orders_for_all_linked_accounts(
        status=client.Order.Status.FILLED
    )
    assert [o["orderId"] for o in only_filled.json()] == [sold_id]
    too_old = await client.get_orders_for_account(
        first, from_entered_datetime=datetime.now(UTC) - timedelta(days=61)
    )
    assert too_old.status_code == 400 and set(too_old.json()) == {"message", "errors"}

    hours = await client.get_market_hours([client.MarketHours.Market.EQUITY])
    assert hours.status_code == 200
    equity = hours.json()["equity"]["EQ"]
    assert equity["isOpen"] is True and equity["sessionHours"]["regularMarket"]

    cancelled = await client.cancel_order(order_id, first)
    assert cancelled.status_code == 200 and cancelled.content == b""
    assert (await client.get_order(order_id, first)).json()["status"] == "CANCELED"
    again = await client.cancel_order(order_id, first)
    assert again.status_code == 400 and set(again.json()) == {"message", "errors"}
    assert (await client.cancel_order(sold_id, second)).status_code == 400  # already filled
    assert (await client.cancel_order(999, first)).status_code == 404


# -- sessions: the fake on a clock the test moves ------------------------------------------

EASTERN_TZ = ZoneInfo("America/New_York")
MONDAY = date(2026, 3, 9)


def ny(hour: int, minute: int = 0, day: date = MONDAY) -> datetime:
    return datetime.combine(day, dtime(hour, minute), EASTERN_TZ)


def move(fake: FakeSchwab, moment: datetime) -> None:
    """Set the fake's clock; the SDK's access token (timed by the real clock) stays valid."""
    fake.clock.set(moment)
    for token in fake.access_tokens:
        fake.access_tokens[token] = moment + timedelta(minutes=30)


@pytest.fixture
async def session_fake() -> AsyncIterator[FakeSchwab]:
    server = FakeSchwab()
    server.clock.set(ny(5))
    server.set_price("AAPL", "190.25")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def session_client(session_fake: FakeSchwab) -> AsyncIterator[AsyncClient]:
    token = await login(session_fake)
    metadata = TokenMetadata(token, int(time.time()), lambda t, *a, **k: None)
    session = AsyncOAuth2Client(
        session_fake.app_key,
        client_secret=session_fake.app_secret,
        token=token,
        token_endpoint=TOKEN_ENDPOINT,
        leeway=300,
        transport=ToFake(session_fake.url),
    )
    sdk = AsyncClient(session_fake.app_key, session, token_metadata=metadata)
    try:
        yield sdk
    finally:
        await sdk.close_async_session()


async def place(client: AsyncClient, account: str, builder: Any) -> int:
    placed = await client.place_order(account, builder)
    assert placed.status_code == 201, placed.text
    order_id = Utils(client, account).extract_order_id(placed)
    assert isinstance(order_id, int)
    return order_id


async def status(client: AsyncClient, account: str, order_id: int) -> dict[str, Any]:
    got = await client.get_order(order_id, account)
    assert got.status_code == 200
    body: dict[str, Any] = got.json()
    return body


async def test_limit_orders_by_session(session_client: AsyncClient, session_fake: FakeSchwab) -> None:
    client, fake = session_client, session_fake
    account = fake.accounts[0][1]
    move(fake, ny(8))  # Schwab's pre-market (07:00-09:30 in the fake)
    am = await place(client, account, equity_buy_limit("AAPL", 2, "190.30").set_session(Session.AM))
    normal = await place(client, account, equity_buy_limit("AAPL", 2, "190.30"))
    seamless = await place(
        client, account, equity_buy_limit("AAPL", 2, "190.30").set_session(Session.SEAMLESS)
    )
    pm = await place(client, account, equity_buy_limit("AAPL", 2, "190.30").set_session(Session.PM))
    assert (await status(client, account, am))["status"] == "FILLED"
    assert (await status(client, account, seamless))["status"] == "FILLED"
    assert (await status(client, account, normal))["status"] == "QUEUED"
    assert (await status(client, account, pm))["status"] == "QUEUED"
    body = await status(client, account, am)
    assert (body["session"], body["orderType"], body["price"]) == ("AM", "LIMIT", 190.3)

    # The AM order's day ends with pre-market; PM waits for 16:00; NORMAL fills at the open.
    move(fake, ny(9, 30))
    assert (await status(client, account, normal))["status"] == "FILLED"
    assert (await status(client, account, pm))["status"] == "QUEUED"
    move(fake, ny(16, 30))
    pm_body = await status(client, account, pm)
    assert pm_body["status"] == "FILLED"
    assert pm_body["orderActivityCollection"][0]["executionLegs"][0]["price"] == 190.25
    assert fake.position("AAPL") == 8

    # Outside NORMAL only limit orders; sub-penny prices are refused.
    market_pm = await client.place_order(account, equity_buy_market("AAPL", 1).set_session(Session.PM))
    assert market_pm.status_code == 400
    sub_penny = await client.place_order(
        account, equity_buy_limit("AAPL", 1, "190.305").set_session(Session.PM)
    )
    assert sub_penny.status_code == 400

    # A PM sell above the market expires at 20:00; a cancel goes through PENDING_CANCEL.
    waiting = await place(
        client, account, equity_sell_limit("AAPL", 3, "195.00").set_session(Session.PM)
    )
    move(fake, ny(19, 59))
    assert (await status(client, account, waiting))["status"] == "WORKING"
    move(fake, ny(20))
    ended = await status(client, account, waiting)
    assert ended["status"] == "EXPIRED" and ended["filledQuantity"] == 0
    # A market order after hours is queued for the next regular session.
    queued = await place(client, account, equity_buy_market("AAPL", 1))
    assert (await status(client, account, queued))["status"] == "QUEUED"

    move(fake, ny(10, day=MONDAY + timedelta(days=1)))
    fake.partial_fill = Decimal("0.5")
    partial = await place(client, account, equity_sell_limit("AAPL", 4, "190.00"))
    first = await status(client, account, partial)
    assert (first["status"], first["filledQuantity"]) == ("WORKING", 2.0)
    fake.set_price("AAPL", "189")
    fake.cancel_pending = True
    assert (await client.cancel_order(partial, account)).status_code == 200
    assert (await status(client, account, partial))["status"] == "CANCELED"
    assert (await status(client, account, partial))["filledQuantity"] == 2.0


async def test_market_hours_follow_the_calendar(
    session_client: AsyncClient, session_fake: FakeSchwab
) -> None:
    client, fake = session_client, session_fake
    half_day = date(2026, 11, 27)
    fake.half_days[half_day] = dtime(13, 0)
    fake.holidays.add(date(2026, 11, 26))
    hours = await client.get_market_hours([client.MarketHours.Market.EQUITY], date=half_day)
    sessions = hours.json()["equity"]["EQ"]["sessionHours"]
    assert sessions["regularMarket"][0]["end"] == ny(13, day=half_day).isoformat()
    assert sessions["postMarket"][0] == {
        "start": ny(13, day=half_day).isoformat(), "end": ny(17, day=half_day).isoformat()
    }
    assert sessions["preMarket"][0]["start"] == ny(7, day=half_day).isoformat()
    closed = await client.get_market_hours(
        [client.MarketHours.Market.EQUITY], date=date(2026, 11, 26)
    )
    assert closed.json()["equity"]["equity"]["isOpen"] is False

    async with httpx.AsyncClient() as http:
        moved = await http.post(f"{fake.url}/_control/clock", json={"now": ny(17).isoformat()})
        assert moved.status_code == 200
        priced = await http.post(
            f"{fake.url}/_control/price", json={"symbol": "MSFT", "price": "410.5"}
        )
        assert priced.status_code == 200
    assert fake.session() == "post" and fake.prices["MSFT"] == Decimal("410.5")
    move(fake, ny(22))
    assert fake.session() == "closed"  # no overnight session at Schwab

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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc6749.errors import MismatchingStateException
from schwab.auth import TOKEN_ENDPOINT, TokenMetadata, get_auth_context
from schwab.client import AsyncClient
from schwab.orders.equities import equity_buy_market, equity_sell_market
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

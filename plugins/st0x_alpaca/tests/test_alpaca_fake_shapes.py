"""The fakes answer with the shapes of Alpaca's real (recorded / documented) responses.

Reference samples are from ``reference/brokers.md`` §7.2–7.3 (vendor doc
samples, alpaca-py fixtures, real error bodies from GitHub issues).
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from st0x_testing.fake_alpaca import FakeAlpacaTrading

DOC_ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4",
    "created_at": "2021-03-16T18:38:01.942282Z",
    "updated_at": "2021-03-16T18:38:01.942282Z",
    "submitted_at": "2021-03-16T18:38:01.937734Z",
    "filled_at": None, "expired_at": None, "canceled_at": None, "failed_at": None,
    "replaced_at": None, "replaced_by": None, "replaces": None,
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": "AAPL",
    "asset_class": "us_equity", "notional": "500", "qty": None, "filled_qty": "0",
    "filled_avg_price": None, "order_class": "", "order_type": "market", "type": "market",
    "side": "buy", "time_in_force": "day", "limit_price": None, "stop_price": None,
    "status": "accepted", "extended_hours": False, "legs": None, "trail_percent": None,
    "trail_price": None, "hwm": None,
}
DOC_ACCOUNT = {
    "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98", "account_number": "010203ABCD",
    "status": "ACTIVE", "currency": "USD", "cash": "-23140.2", "buying_power": "262113.632",
    "equity": "103820.56", "portfolio_value": "103820.56", "trading_blocked": False,
    "account_blocked": False, "pattern_day_trader": False, "shorting_enabled": True,
    "multiplier": "4", "daytrade_count": 0,
}
DOC_BROKER_ACCOUNT = {
    "id": "5fc0795e-1f16-40cc-aa90-ede67c39d7a9", "account_number": "684486106",
    "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD", "buying_power": "0",
    "cash": "0", "cash_withdrawable": "0", "cash_transferable": "0", "portfolio_value": "0",
    "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
    "created_at": "2022-04-14T15:51:14.523349Z", "equity": "0", "daytrade_count": 0,
    "previous_close": "2022-04-13T20:00:00-04:00", "clearing_broker": "VELOX",
}
DOC_POSITION = {
    "asset_id": "904837e3-3b76-47ec-b432-046db621571b", "symbol": "AAPL", "exchange": "NASDAQ",
    "asset_class": "us_equity", "avg_entry_price": "100.0", "qty": "5", "side": "long",
    "market_value": "600.0", "cost_basis": "500.0", "unrealized_pl": "100.0",
    "unrealized_plpc": "0.20", "unrealized_intraday_pl": "10.0",
    "unrealized_intraday_plpc": "0.0084", "current_price": "120.0",
    "lastday_price": "119.0", "change_today": "0.0084",
}
DOC_CLOCK = {
    "timestamp": "2022-05-16T16:32:24.14373588-04:00", "is_open": False,
    "next_open": "2022-05-17T09:30:00-04:00", "next_close": "2022-05-17T16:00:00-04:00",
}
DOC_CALENDAR_DAY = {
    "date": "2022-05-16", "open": "09:30", "close": "16:00",
    "session_open": "0400", "session_close": "2000",
}

HEADERS = {"APCA-API-KEY-ID": "PK", "APCA-API-SECRET-KEY": "s"}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"CK:s").decode()}


def same_shape(doc: dict[str, Any], ours: dict[str, Any]) -> None:
    missing = set(doc) - set(ours)
    assert not missing, f"fake lacks {sorted(missing)}"
    for key, value in doc.items():
        if value is None or ours[key] is None:
            continue
        assert type(ours[key]) is type(value), (key, ours[key], value)


async def get(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with session.request(kw.pop("method", "GET"), url, **kw) as resp:
        return resp.status, json.loads(await resp.read())


async def test_trading_fake_shapes() -> None:
    async with FakeAlpacaTrading(key_id="PK", secret_key="s") as fake, aiohttp.ClientSession(
        headers=HEADERS
    ) as session:
        fake.positions["AAPL"] = Decimal(5)
        base = fake.base_url
        status, placed = await get(
            session,
            f"{base}/v2/orders",
            method="POST",
            json={"symbol": "AAPL", "qty": "0.5", "side": "buy", "type": "market",
                  "time_in_force": "day", "client_order_id": "shape-1"},
        )
        assert status == 200
        same_shape({k: v for k, v in DOC_ORDER.items() if k not in ("notional",)}, placed)
        assert placed["qty"] == "0.5" and placed["filled_qty"] == "0"
        _, account = await get(session, f"{base}/v2/account")
        same_shape(DOC_ACCOUNT, account)
        _, positions = await get(session, f"{base}/v2/positions")
        same_shape(DOC_POSITION, positions[0])
        _, clock = await get(session, f"{base}/v2/clock")
        same_shape(DOC_CLOCK, clock)
        _, calendar = await get(session, f"{base}/v2/calendar?start=2022-05-16&end=2022-05-17")
        same_shape(DOC_CALENDAR_DAY, calendar[0])

        # Real error bodies (reference/brokers.md §7.2)
        async with aiohttp.ClientSession() as anonymous:
            assert await get(anonymous, f"{base}/v2/account") == (
                401, {"code": 40110000, "message": "request is not authorized"}
            )
        fake.cash = Decimal(1)
        status, body = await get(
            session, f"{base}/v2/orders", method="POST",
            json={"symbol": "AAPL", "qty": "5", "side": "buy", "type": "market",
                  "time_in_force": "day"},
        )
        assert status == 403 and body["code"] == 40310000
        assert body["message"] == "insufficient buying power" and isinstance(body["buying_power"], str)
        status, body = await get(session, f"{base}/v2/orders", method="POST", data=b"{nope")
        assert (status, body["code"]) == (400, 40010000)
        status, body = await get(
            session, f"{base}/v2/orders", method="POST",
            json={"symbol": "AAPL", "qty": "1", "side": "up", "type": "market", "time_in_force": "day"},
        )
        assert (status, body) == (422, {"code": 40010001, "message": "invalid side"})


async def test_broker_fake_shapes() -> None:
    broker_fake = pytest.importorskip("st0x_testing.fake_alpaca_broker")
    FakeAlpacaBroker, ACCOUNT_ID = broker_fake.FakeAlpacaBroker, broker_fake.ACCOUNT_ID
    async with FakeAlpacaBroker(key="CK", secret="s") as fake, aiohttp.ClientSession(
        headers=BASIC
    ) as session:
        base = f"{fake.base_url}/v1/trading/accounts/{ACCOUNT_ID}"
        _, account = await get(session, f"{base}/account")
        same_shape(DOC_BROKER_ACCOUNT, account)
        status, placed = await get(
            session, f"{base}/orders", method="POST",
            json={"symbol": "AAPL", "qty": "1.5", "side": "sell", "type": "market",
                  "time_in_force": "day"},
        )
        assert status == 200
        same_shape({k: v for k, v in DOC_ORDER.items() if k != "notional"}, placed)
        status, again = await get(session, f"{base}/orders/{placed['id']}")
        assert status == 200 and again["id"] == placed["id"]
        _, calendar = await get(session, f"{fake.base_url}/v1/calendar?start=2022-05-16&end=2022-05-16")
        same_shape(DOC_CALENDAR_DAY, calendar[0])
        _, clock = await get(session, f"{fake.base_url}/v1/clock")
        same_shape(DOC_CLOCK, clock)
        async with session.get(f"{base}/account") as resp:
            assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
                resp.headers
            )

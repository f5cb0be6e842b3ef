"""Property tests: whatever Schwab sends, only classified BrokerErrors escape."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from st0x_schwab.config import SchwabConfig
from st0x_schwab.executor import SchwabExecutor
from st0x_schwab.http import classify
from st0x_schwab.parsing import (
    decode_json,
    error_message,
    order_id_from_location,
    order_update,
    parse_accounts,
    parse_market_hours,
    parse_order,
    parse_order_list,
    parse_token_reply,
)
from st0x_testing.fake_schwab import FakeSchwab, Fault, TestClock

from st0x_liquidity import BrokerError, OrderState, OrderUpdate, Secret
from st0x_liquidity.store import SqliteStore

RECORDED_FILL = {
    "session": "NORMAL", "duration": "DAY", "orderType": "MARKET",
    "complexOrderStrategyType": "NONE", "quantity": 1.0, "filledQuantity": 1.0,
    "remainingQuantity": 0.0, "requestedDestination": "AUTO", "destinationLinkName": "HRTF",
    "orderLegCollection": [{"orderLegType": "EQUITY", "legId": 1,
        "instrument": {"assetType": "EQUITY", "cusip": "36467W109", "symbol": "GME",
                       "instrumentId": 4430271},
        "instruction": "BUY", "positionEffect": "OPENING", "quantity": 1.0}],
    "orderStrategyType": "SINGLE", "orderId": 1004055538153, "cancelable": False,
    "editable": False, "status": "FILLED", "enteredTime": "2025-08-29T17:15:17+0000",
    "closeTime": "2025-08-29T17:15:18+0000", "tag": "TA_app", "accountNumber": 12345678,
    "orderActivityCollection": [{"activityType": "EXECUTION", "activityId": 102102029816,
        "executionType": "FILL", "quantity": 1.0, "orderRemainingQuantity": 0.0,
        "executionLegs": [{"legId": 1, "quantity": 1.0, "mismarkedQuantity": 0.0,
            "price": 22.7299, "time": "2025-08-29T17:15:18+0000", "instrumentId": 4430271}]}],
}


def test_recorded_real_order_maps_to_filled() -> None:
    body = json.dumps(RECORDED_FILL).encode()
    update = order_update(parse_order(decode_json(body, "order")))
    assert update.state is OrderState.FILLED
    assert update.broker_order_id == "1004055538153"
    assert update.average_price == Decimal("22.7299")
    assert update.filled_quantity == Decimal(1)
    assert update.updated_at == datetime(2025, 8, 29, 17, 15, 18, tzinfo=UTC)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def mutate(value: Any, draw: Any) -> Any:
    """Replace parts of a real reply with junk, keeping the rest realistic."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            choice = draw(st.integers(0, 5))
            if choice == 0:
                continue  # drop the key
            out[k] = draw(json_values) if choice == 1 else mutate(v, draw)
        return out
    if isinstance(value, list):
        return [mutate(v, draw) for v in value]
    return draw(json_values) if draw(st.integers(0, 3)) == 0 else value


@st.composite
def ugly_orders(draw: Any) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        raw: bytes = draw(st.binary(max_size=200))
        return raw
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    data = mutate(RECORDED_FILL, draw)
    if isinstance(data, dict) and draw(st.booleans()):
        data["status"] = draw(
            st.sampled_from(["FILLED", "WORKING", "REJECTED", "CANCELED", "EXPIRED", "REPLACED",
                             "PENDING_CANCEL", "UNKNOWN", "QUEUED"])
        )
    return json.dumps(data).encode()


def _only_broker_errors(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except BrokerError:
        return None


@settings(max_examples=400, deadline=None)
@given(body=ugly_orders())
def test_order_decoding_raises_only_broker_errors(body: bytes) -> None:
    def go() -> OrderUpdate:
        update = order_update(parse_order(decode_json(body, "order"), "1"))
        assert update.filled_quantity >= 0
        if update.state is OrderState.FILLED:
            assert update.average_price is not None and update.average_price >= 0
        return update

    _only_broker_errors(go)
    _only_broker_errors(parse_order_list, body)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_other_decoders_raise_only_broker_errors(body: bytes) -> None:
    for fn in (parse_accounts, parse_market_hours, parse_token_reply):
        _only_broker_errors(fn, body)
    assert isinstance(error_message(body), str)


@settings(max_examples=200, deadline=None)
@given(location=st.one_of(st.none(), st.text(max_size=80)))
def test_location_parsing_never_raises(location: str | None) -> None:
    result = order_id_from_location(location)
    assert result is None or result.isdigit()


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(300, 599),
    body=st.binary(max_size=100),
    retry_after=st.one_of(st.none(), st.text(max_size=10)),
    kind=st.sampled_from(["read", "order", "token"]),
)
def test_every_error_status_is_classified(
    status: int, body: bytes, retry_after: str | None, kind: Any
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    error = classify(status, headers, body, "call", kind)
    assert isinstance(error, BrokerError)
    if kind == "order" and status >= 500:
        assert type(error).__name__ == "AmbiguousBrokerError"


# -- the same over real HTTP ---------------------------------------------------------------


class Background:
    """A fake Schwab and an authorized executor on an event loop in another thread."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tmp = tmp

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def setup(self) -> None:
        self.clock = TestClock(datetime(2026, 3, 4, 15, 0, tzinfo=UTC))
        self.fake = FakeSchwab(now=self.clock.now)
        await self.fake.start()
        self.store = SqliteStore(self.tmp / "ugly.db")
        await self.store.open()
        config = SchwabConfig(
            app_key=self.fake.app_key, app_secret=Secret(self.fake.app_secret),
            encryption_key=Secret(secrets.token_hex(32)), base_url=self.fake.url,
            retry_backoff=0.001, max_retries=1, requests_per_minute=1_000_000,
        )
        self.executor = SchwabExecutor(config, self.store, now=self.clock.now)
        await self.executor.tokens.exchange_code(self.fake.issue_code())
        self.order_id = str(self.fake.add_order("AAPL", "BUY", 1).order_id)

    async def teardown(self) -> None:
        await self.executor.close()
        await self.store.close()
        await self.fake.stop()


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    bg = Background(tmp_path_factory.mktemp("ugly"))
    bg.run(bg.setup())
    yield bg
    bg.run(bg.teardown())
    bg.loop.call_soon_threadsafe(bg.loop.stop)
    bg.thread.join(5)
    bg.loop.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.sampled_from([200, 201, 204, 400, 401, 403, 404, 408, 429, 500, 502, 503]),
       body=ugly_orders(),
       route=st.sampled_from(["get_order", "market_hours", "list_orders", "place_order"]))
def test_ugly_http_replies_escape_only_as_broker_errors(
    background: Background, status: int, body: bytes, route: Any
) -> None:
    bg = background
    bg.fake.inject(route, Fault("status", status, body), times=3)
    ex = bg.executor
    from st0x_liquidity import Direction, MarketOrder, Symbol

    async def call() -> Any:
        if route == "get_order":
            return await ex.order_status(bg.order_id)
        if route == "market_hours":
            return await ex.market_clock()
        intent = MarketOrder(Symbol("AAPL"), Direction.BUY, Decimal(1), "cid-ugly", Decimal(1))
        if route == "list_orders":
            await ex._record_attempt(intent)
            return await ex.find_order("cid-ugly", intent)
        return await ex.place_market_order(intent)

    try:
        bg.run(call())
    except BrokerError:
        pass
    finally:
        bg.fake.faults.clear()

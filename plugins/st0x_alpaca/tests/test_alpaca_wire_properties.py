"""Property tests: ugly broker replies end in a classified BrokerError, never anything else."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from st0x_alpaca import AlpacaTradingConfig, AlpacaTradingExecutor
from st0x_alpaca.http import error_details, parse_retry_after
from st0x_alpaca.wire import (
    KNOWN_STATUSES,
    MalformedReplyError,
    json_loads,
    order_update,
    parse_account,
    parse_calendar,
    parse_clock,
    parse_order,
    parse_positions,
    parse_time,
)
from st0x_testing.fake_alpaca import FakeAlpacaTrading

from st0x_liquidity import BrokerError, OrderState, Secret

from .conftest import KEY, SECRET  # type: ignore[import-not-found]

ORDER = {
    "id": "39c489ad-fcb1-42b3-9f62-e14c11c62157",
    "client_order_id": "a49c3e74-3f74-468e-a31a-f7a15de17128",
    "created_at": "2024-05-20T09:56:41.449735Z",
    "updated_at": "2024-05-20T13:30:00.876162Z",
    "submitted_at": "2024-05-20T13:23:01.24795Z",
    "filled_at": "2024-05-20T13:30:00.865454Z",
    "expired_at": None,
    "canceled_at": None,
    "failed_at": None,
    "replaced_at": None,
    "replaced_by": None,
    "replaces": None,
    "asset_id": "7595a8d2-68a6-46d7-910c-6b1958491f5c",
    "symbol": "A",
    "asset_class": "us_equity",
    "notional": None,
    "qty": "0.1",
    "filled_qty": "0.1",
    "filled_avg_price": "154.03",
    "order_class": "",
    "order_type": "market",
    "type": "market",
    "side": "sell",
    "time_in_force": "day",
    "limit_price": None,
    "stop_price": None,
    "status": "filled",
    "extended_hours": False,
    "legs": None,
}

DOCUMENTED = {
    "new": OrderState.SUBMITTED,
    "accepted": OrderState.SUBMITTED,
    "pending_new": OrderState.SUBMITTED,
    "accepted_for_bidding": OrderState.SUBMITTED,
    "pending_cancel": OrderState.SUBMITTED,
    "pending_replace": OrderState.SUBMITTED,
    "stopped": OrderState.SUBMITTED,
    "held": OrderState.SUBMITTED,
    "suspended": OrderState.SUBMITTED,
    "partially_filled": OrderState.SUBMITTED,  # with filled_qty 0
    "filled": OrderState.FILLED,
    "done_for_day": OrderState.CANCELLED,
    "calculated": OrderState.CANCELLED,
    "canceled": OrderState.CANCELLED,
    "expired": OrderState.CANCELLED,
    "replaced": OrderState.CANCELLED,
    "rejected": OrderState.FAILED,
}


def test_recorded_doc_sample_maps_to_filled() -> None:
    update = order_update(parse_order(json_loads(json.dumps(ORDER))))
    assert update.state is OrderState.FILLED
    assert update.filled_quantity == Decimal("0.1")
    assert update.average_price == Decimal("154.03")
    assert update.updated_at == datetime(2024, 5, 20, 13, 30, 0, 876162, tzinfo=UTC)


@pytest.mark.parametrize("status", sorted(DOCUMENTED))
def test_every_documented_status_is_mapped(status: str) -> None:
    unfilled = dict(ORDER, status=status, filled_qty="0", filled_avg_price=None, qty="1")
    expected = DOCUMENTED[status]
    if status == "filled":
        unfilled = dict(unfilled, filled_qty="1", filled_avg_price="10")
    update = order_update(parse_order(unfilled))
    assert update.state is expected
    assert status in KNOWN_STATUSES
    if expected in (OrderState.CANCELLED, OrderState.FAILED):
        assert update.reason is not None and status in update.reason


@pytest.mark.parametrize("status", ["done_for_day", "calculated"])
def test_day_done_with_everything_filled_is_filled(status: str) -> None:
    data = dict(ORDER, status=status, qty="2", filled_qty="2", filled_avg_price="10.5")
    assert order_update(parse_order(data)).state is OrderState.FILLED
    partial = dict(data, filled_qty="0.5")
    update = order_update(parse_order(partial))
    assert update.state is OrderState.CANCELLED and update.filled_quantity == Decimal("0.5")


def test_partially_filled_carries_quantity_and_price() -> None:
    data = dict(ORDER, status="partially_filled", qty="3", filled_qty="1.25", filled_avg_price="99.99")
    update = order_update(parse_order(data))
    assert update.state is OrderState.PARTIALLY_FILLED
    assert (update.filled_quantity, update.average_price) == (Decimal("1.25"), Decimal("99.99"))


def test_unknown_status_stays_open_with_a_reason() -> None:
    update = order_update(parse_order(dict(ORDER, status="brand_new_status", filled_qty="0")))
    assert update.state is OrderState.SUBMITTED
    assert update.reason is not None and "brand_new_status" in update.reason


def test_numbers_are_decimals_never_floats() -> None:
    data = json_loads(b'{"qty": 0.1, "filled_avg_price": 1e2, "n": 3}')
    assert data == {"qty": Decimal("0.1"), "filled_avg_price": Decimal("1e2"), "n": 3}
    assert isinstance(data["qty"], Decimal)
    with pytest.raises(MalformedReplyError):
        json_loads(b'{"qty": NaN}')


def test_nanosecond_timestamps_and_offsets() -> None:
    assert parse_time("2022-05-16T16:32:24.14373588-04:00") == datetime(
        2022, 5, 16, 20, 32, 24, 143735, tzinfo=UTC
    )
    assert parse_time("2022-05-17T09:30:00-04:00").utcoffset() is not None
    assert parse_time("2024-01-01T00:00:00Z") == datetime(2024, 1, 1, tzinfo=UTC)


def test_calendar_accepts_both_time_spellings() -> None:
    days = parse_calendar(
        [
            {"date": "2022-05-17", "open": "0930", "close": "16:00"},
            {"date": "2022-05-16", "open": "09:30", "close": "13:00"},
        ]
    )
    assert [d.day.isoformat() for d in days] == ["2022-05-16", "2022-05-17"]
    assert days[0].close.hour == 13


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.decimals(allow_nan=False, allow_infinity=False).map(str)
    | st.text(max_size=30)
    | st.sampled_from(
        ["", "1e999999", "-0", "NaN", "Infinity", "2024-01-01T00:00:00Z", "12:00", "buy", "filled"]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
ORDER_KEYS = ["id", "status", "side", "qty", "filled_qty", "filled_avg_price", "updated_at", "symbol"]


@st.composite
def mangled_orders(draw: st.DrawFn) -> Any:
    data: dict[str, Any] = dict(ORDER)
    for key in draw(st.lists(st.sampled_from(ORDER_KEYS), max_size=4)):
        if draw(st.booleans()):
            data.pop(key, None)
        else:
            data[key] = draw(json_values)
    if draw(st.booleans()):
        data["status"] = draw(st.sampled_from(sorted(KNOWN_STATUSES)))
    return data


@given(mangled_orders() | json_values)
@settings(max_examples=400, deadline=None)
def test_parsing_ugly_orders_raises_only_broker_errors(data: Any) -> None:
    try:
        update = order_update(parse_order(data))
    except BrokerError:
        return
    assert isinstance(update.filled_quantity, Decimal)
    assert update.average_price is None or isinstance(update.average_price, Decimal)
    if update.state is OrderState.FILLED:
        assert update.filled_quantity > 0 and update.average_price is not None


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_parsing_ugly_clock_positions_calendar_account(data: Any) -> None:
    for parse in (parse_clock, parse_positions, parse_calendar, parse_account):
        with contextlib.suppress(BrokerError):
            parse(data)


@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v, default=str).encode()))
@settings(max_examples=300, deadline=None)
def test_error_bodies_and_json_never_crash(body: bytes) -> None:
    code, message = error_details(body)
    assert code is None or isinstance(code, int)
    assert isinstance(message, str) and message
    with contextlib.suppress(BrokerError):
        json_loads(body)


@given(st.text(max_size=40))
def test_retry_after_never_crashes(value: str) -> None:
    wait = parse_retry_after(value)
    assert wait is None or wait >= 0


STATUSES = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503])
BODIES = (
    st.binary(max_size=120)
    | json_values.map(lambda v: json.dumps(v, default=str).encode())
    | mangled_orders().map(lambda v: json.dumps(v, default=str).encode())
)


@given(status=STATUSES, body=BODIES)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_ugly_replies_over_http_raise_only_broker_errors(status: int, body: bytes) -> None:
    """The whole stack (aiohttp client, classification, parsing) against raw replies."""

    async def scenario() -> None:
        fake = FakeAlpacaTrading(key_id=KEY, secret_key=SECRET)
        await fake.start()
        executor = AlpacaTradingExecutor(
            AlpacaTradingConfig(
                api_key=Secret(KEY),
                api_secret=Secret(SECRET),
                base_url=fake.base_url,
                max_attempts=1,
                resolve_attempts=1,
                backoff_initial=0.001,
                retry_after_max=0.01,
            )
        )
        try:
            for call in ("status", "find", "place", "clock"):
                fake.inject("raw", status=status, body=body)
                try:
                    if call == "status":
                        await executor.order_status(ORDER["id"])
                    elif call == "find":
                        await executor.find_order("cid", None)  # type: ignore[arg-type]
                    elif call == "place":
                        from st0x_liquidity import Direction, MarketOrder, Symbol

                        await executor.place_market_order(
                            MarketOrder(Symbol("AAPL"), Direction.BUY, Decimal(1), "c", Decimal(1))
                        )
                    else:
                        await executor.market_clock()
                except BrokerError:
                    pass
                fake.faults.clear()
        finally:
            await executor.close()
            await fake.stop()

    asyncio.run(scenario())

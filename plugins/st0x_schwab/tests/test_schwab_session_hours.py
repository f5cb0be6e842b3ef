"""Schwab's market hours as trading days, and limit bodies: properties and ugly replies."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from st0x_schwab.parsing import SchwabReplyError
from st0x_schwab.session_hours import limit_body, parse_trading_day

from st0x_liquidity import (
    Direction,
    FinalBrokerError,
    LimitOrder,
    Session,
    Symbol,
    limit_tick,
    round_limit,
)

DAY = date(2026, 3, 4)


def hours(**sessions: Any) -> bytes:
    return json.dumps(
        {"equity": {"EQ": {"date": DAY.isoformat(), "isOpen": True, "sessionHours": sessions}}}
    ).encode()


def window(start: str, end: str) -> list[dict[str, str]]:
    return [{"start": f"2026-03-04T{start}:00-05:00", "end": f"2026-03-04T{end}:00-05:00"}]


def test_open_closed_and_partial_days() -> None:
    day = parse_trading_day(
        hours(
            preMarket=window("07:00", "09:30"),
            regularMarket=window("09:30", "16:00"),
            postMarket=window("16:00", "20:00"),
        ),
        DAY,
    )
    assert day is not None and day.date == DAY
    assert (day.extended_open.hour, day.extended_close.hour) == (12, 1)  # type: ignore[union-attr]
    only_regular = parse_trading_day(hours(regularMarket=window("09:30", "13:00")), DAY)
    assert only_regular is not None and only_regular.extended_open is None
    assert only_regular.extended_close is None
    closed = json.dumps({"equity": {"equity": {"date": "2026-03-07", "isOpen": False}}}).encode()
    assert parse_trading_day(closed, date(2026, 3, 7)) is None


@pytest.mark.parametrize(
    "body",
    [
        b"<html>",
        b"[]",
        b'{"equity": {}}',
        hours(regularMarket=[]),
        hours(regularMarket=window("16:00", "09:30")),
        hours(regularMarket=window("09:30", "16:00"), preMarket="07:00"),
        hours(regularMarket=[{"start": "soon", "end": "later"}]),
        json.dumps({"equity": {"EQ": {"isOpen": True}}}).encode(),
    ],
)
def test_ugly_market_hours_are_one_retryable_error(body: bytes) -> None:
    with pytest.raises(SchwabReplyError):
        parse_trading_day(body, DAY)


def order(price: Decimal, qty: str = "3", session: Session = Session.PRE) -> LimitOrder:
    return LimitOrder(
        Symbol("AAPL"), Direction.SELL, Decimal(qty), "c", price, session, price, "onchain"
    )


@given(
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**5), places=6, allow_nan=False),
    st.sampled_from([Session.PRE, Session.POST, Session.REGULAR]),
)
def test_grid_prices_go_out_exactly(raw: Decimal, session: Session) -> None:
    price = round_limit(raw, Direction.SELL)
    body = limit_body(order(price, session=session))
    assert Decimal(body["price"]) == price
    assert body["session"] == {Session.PRE: "AM", Session.POST: "PM"}.get(session, "SEAMLESS")
    assert (body["orderType"], body["duration"]) == ("LIMIT", "DAY")
    if raw != raw.quantize(limit_tick(raw)):
        with pytest.raises(FinalBrokerError):
            limit_body(order(raw))


@pytest.mark.parametrize(
    ("price", "qty", "session"),
    [
        ("10", "1.5", Session.PRE),
        ("10", "0", Session.PRE),
        ("10.001", "1", Session.PRE),
        ("0", "1", Session.PRE),
        ("10", "1", Session.OVERNIGHT),
        ("10", "1", Session.CLOSED),
    ],
)
def test_refused_before_any_request(price: str, qty: str, session: Session) -> None:
    with pytest.raises(FinalBrokerError):
        limit_body(order(Decimal(price), qty, session))

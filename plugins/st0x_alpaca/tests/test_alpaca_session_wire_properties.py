"""Property tests for the extended-hours wire: bodies, calendars, assets, marks."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from st0x_alpaca.session_wire import (
    limit_order_body,
    parse_eligibility,
    parse_mark,
    parse_session_calendar,
)
from st0x_alpaca.wire import MalformedReplyError

from st0x_liquidity import (
    Direction,
    FinalBrokerError,
    LimitOrder,
    Session,
    Symbol,
    limit_tick,
    round_limit,
)

prices = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal(100_000), allow_nan=False, places=6
)
sessions = st.sampled_from([Session.PRE, Session.POST, Session.OVERNIGHT, Session.REGULAR])


def order(price: Decimal, session: Session = Session.PRE, qty: str = "1.5") -> LimitOrder:
    return LimitOrder(
        Symbol("AAPL"), Direction.BUY, Decimal(qty), "cid", price, session, price, "pyth"
    )


@given(prices, st.sampled_from(list(Direction)), sessions)
def test_a_grid_price_goes_out_unchanged(raw: Decimal, side: Direction, session: Session) -> None:
    price = round_limit(raw, side)
    body = limit_order_body(order(price, session), "cid")
    assert Decimal(str(body["limit_price"])) == price
    assert (body["type"], body["time_in_force"], body["extended_hours"]) == ("limit", "day", True)


@given(prices)
def test_an_off_grid_price_never_leaves(price: Decimal) -> None:
    if price == price.quantize(limit_tick(price)):
        return
    with pytest.raises(FinalBrokerError, match="off Alpaca's grid"):
        limit_order_body(order(price), "cid")


@given(st.decimals(min_value=Decimal("1e-12"), max_value=Decimal(10**6), places=12))
def test_the_quantity_is_cut_never_raised(qty: Decimal) -> None:
    try:
        body = limit_order_body(order(Decimal("10.00"), qty=str(qty)), "cid")
    except FinalBrokerError:
        assert qty < Decimal("1e-9")
        return
    sent = Decimal(str(body["qty"]))
    assert 0 < sent <= qty and qty - sent < Decimal("1e-9")


def test_closed_session_and_bad_prices_are_refused() -> None:
    for bad in (Decimal(0), Decimal(-1), Decimal("NaN")):
        with pytest.raises(FinalBrokerError):
            limit_order_body(order(bad), "cid")
    with pytest.raises(FinalBrokerError, match="closed"):
        limit_order_body(order(Decimal(10), Session.CLOSED), "cid")


hhmm = st.builds(time, st.integers(0, 23), st.integers(0, 59))


@given(hhmm, hhmm, st.one_of(st.none(), hhmm), st.one_of(st.none(), hhmm))
def test_calendar_days_always_nest(
    opens: time, closes: time, session_open: time | None, session_close: time | None
) -> None:
    row: dict[str, Any] = {
        "date": "2026-03-09", "open": opens.strftime("%H:%M"), "close": closes.strftime("%H:%M"),
    }
    if session_open is not None:
        row["session_open"] = session_open.strftime("%H%M")
    if session_close is not None:
        row["session_close"] = session_close.strftime("%H%M")
    if closes <= opens:
        with pytest.raises(MalformedReplyError):
            parse_session_calendar([row])
        return
    [day] = parse_session_calendar([row])
    assert day.date == date(2026, 3, 9)
    assert day.extended_open is not None and day.extended_close is not None
    assert day.extended_open <= day.regular_open < day.regular_close <= day.extended_close


@given(st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2)))
def test_ugly_calendar_fields_are_one_error(value: Any) -> None:
    row = {"date": "2026-03-09", "open": "09:30", "close": "16:00", "session_open": value}
    try:
        [day] = parse_session_calendar([row])
    except MalformedReplyError:
        return
    assert day.extended_open is not None


@given(
    st.lists(
        st.sampled_from(
            ["fractional_eh_enabled", "overnight_tradable", "overnight_halted", "has_options"]
        ),
        unique=True,
    ),
    st.booleans(),
    st.sampled_from(["active", "inactive"]),
)
def test_eligibility_follows_the_attributes(
    attributes: list[str], tradable: bool, status: str
) -> None:
    found = parse_eligibility(
        {"symbol": "AAPL", "status": status, "tradable": tradable, "attributes": attributes}
    )
    extended = tradable and status == "active" and "fractional_eh_enabled" in attributes
    assert found.extended is extended
    assert found.overnight is (extended and "overnight_tradable" in attributes)
    assert found.overnight_halted is ("overnight_halted" in attributes)


@given(st.one_of(st.none(), st.text(max_size=12), st.integers(), st.floats()))
def test_a_mark_is_positive_or_none_or_one_error(value: Any) -> None:
    try:
        mark = parse_mark({"symbol": "AAPL", "current_price": value})
    except MalformedReplyError:
        return
    assert mark is None or (mark.is_finite() and mark > 0)

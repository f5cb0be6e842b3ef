"""Alpaca's JSON for trading outside regular hours, read strictly (both APIs).

* the calendar with its extended day (``session_open`` / ``session_close``,
  ``HHMM`` New York) as the core's :class:`~st0x_liquidity.TradingDay`;
* asset ``attributes`` as :class:`~st0x_liquidity.SymbolEligibility`;
* the account configuration's ``disable_overnight_trading``;
* a position's mark (``current_price``);
* the body of an extended-hours limit order.

The Broker API reference marks ``session_open`` / ``session_close`` deprecated
("please ignore", with examples 0700/1900) while the Trading API documents them
as 0400/2000. Both executors read them when present and sensible (inside the
day, around the regular session): a narrower window is the safe direction, it
only hedges less. When they are absent or unusable the extended day is 04:00
to 20:00 New York (Alpaca's documented pre-market and after-hours), except on a
half-day, where after-hours is left out (Alpaca's 2026 FAQ says it does not
run then). See docs/brokers/alpaca-sessions.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from st0x_liquidity import (
    FinalBrokerError,
    LimitOrder,
    Session,
    SymbolEligibility,
    TradingDay,
    fmt,
    limit_tick,
    round_down,
)

from .wire import NEW_YORK, QTY_DECIMALS, MalformedReplyError, _hhmm, _kind, _obj, _str

DEFAULT_SESSION_OPEN = time(4, 0)
DEFAULT_SESSION_CLOSE = time(20, 0)
REGULAR_CLOSE = time(16, 0)


def _at(day: date, wall: time) -> datetime:
    return datetime.combine(day, wall, NEW_YORK).astimezone(UTC)


def _optional_hhmm(obj: Mapping[str, Any], key: str, what: str) -> time | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    return _hhmm(value, f"{what}: {key}")


def parse_session_calendar(data: Any) -> list[TradingDay]:
    """``[{date, open, close, session_open?, session_close?}]`` -> trading days, sorted."""
    if not isinstance(data, list):
        raise MalformedReplyError(f"calendar: expected a JSON array, got {_kind(data)}")
    days: dict[date, TradingDay] = {}
    for index, item in enumerate(data):
        what = f"calendar day {index}"
        obj = _obj(item, what)
        text = _str(obj, "date", what)
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            raise MalformedReplyError(f"{what}: date is not YYYY-MM-DD: {text[:20]!r}") from None
        opens = _hhmm(obj.get("open"), f"{what}: open")
        closes = _hhmm(obj.get("close"), f"{what}: close")
        if closes <= opens:
            raise MalformedReplyError(f"{what}: close is not after open")
        session_open = _optional_hhmm(obj, "session_open", what)
        session_close = _optional_hhmm(obj, "session_close", what)
        if session_open is None or session_open > opens:
            session_open = min(DEFAULT_SESSION_OPEN, opens)
        if session_close is None or session_close < closes:
            session_close = max(DEFAULT_SESSION_CLOSE, closes) if closes >= REGULAR_CLOSE else closes
        days[day] = TradingDay(
            date=day,
            regular_open=_at(day, opens),
            regular_close=_at(day, closes),
            extended_open=_at(day, session_open),
            extended_close=_at(day, session_close),
        )
    return [days[d] for d in sorted(days)]


def _attributes(obj: Mapping[str, Any], what: str) -> frozenset[str]:
    value = obj.get("attributes")
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise MalformedReplyError(f"{what}: attributes must be a list of strings")
    return frozenset(a.strip().lower() for a in value)


def parse_eligibility(data: Any) -> SymbolEligibility:
    """An asset -> what it may do outside regular hours.

    ``extended`` needs an active, tradable asset with ``fractional_eh_enabled``
    (hedges are fractional); ``overnight`` needs ``overnight_tradable`` as well;
    ``overnight_halted`` is reported as Alpaca sets it.
    """
    what = "asset"
    obj = _obj(data, what)
    symbol = obj.get("symbol")
    if isinstance(symbol, str):
        what = f"asset {symbol[:20]}"
    attributes = _attributes(obj, what)
    status = obj.get("status")
    tradable = obj.get("tradable")
    if not isinstance(tradable, bool):
        raise MalformedReplyError(f"{what}: tradable must be true or false, got {_kind(tradable)}")
    active = tradable and status == "active"
    extended = active and "fractional_eh_enabled" in attributes
    return SymbolEligibility(
        extended=extended,
        overnight=extended and "overnight_tradable" in attributes,
        overnight_halted="overnight_halted" in attributes,
    )


def parse_overnight_disabled(data: Any) -> bool | None:
    """``disable_overnight_trading`` of ``…/account/configurations`` (None: not reported)."""
    obj = _obj(data, "account configuration")
    value = obj.get("disable_overnight_trading")
    if value is None:
        return None
    if not isinstance(value, bool):
        raise MalformedReplyError(
            f"account configuration: disable_overnight_trading must be true or false, "
            f"got {_kind(value)}"
        )
    return value


def parse_mark(data: Any) -> Decimal | None:
    """A position's ``current_price`` (None when Alpaca has none)."""
    obj = _obj(data, "position")
    value = obj.get("current_price")
    if value is None or value == "":
        return None
    try:
        price = Decimal(str(value))
    except ArithmeticError:
        raise MalformedReplyError(f"position: current_price is not a number: {value!r}") from None
    if not price.is_finite() or price <= 0:
        raise MalformedReplyError(f"position: current_price must be positive, got {value!r}")
    return price


def limit_order_body(order: LimitOrder, client_order_id: str) -> dict[str, object]:
    """An extended-hours hedge: ``limit``, ``day``, ``extended_hours``, fractional ``qty``.

    The limit price goes out exactly as given (the engine put it on the grid);
    one off the grid is refused here rather than by Alpaca's 422. The quantity
    is cut to nine decimals, never rounded up.
    """
    price = order.limit_price
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        raise FinalBrokerError(f"limit price must be a positive Decimal, got {price!r}")
    if price != price.quantize(limit_tick(price)):
        raise FinalBrokerError(
            f"limit price {fmt(price)} is off Alpaca's grid (steps of {limit_tick(price)})"
        )
    if order.session is Session.CLOSED:
        raise FinalBrokerError("no limit order is sent while every session is closed")
    if not isinstance(order.quantity, Decimal) or not order.quantity.is_finite():
        raise FinalBrokerError(f"quantity must be a finite Decimal, got {order.quantity!r}")
    qty = round_down(order.quantity, QTY_DECIMALS)
    if qty <= 0:
        raise FinalBrokerError(f"quantity {order.quantity} is below Alpaca's smallest unit")
    return {
        "symbol": str(order.symbol),
        "qty": fmt(qty),
        "side": order.side.value.lower(),
        "type": "limit",
        "time_in_force": "day",
        "limit_price": fmt(price.quantize(limit_tick(price))),
        "extended_hours": True,
        "client_order_id": client_order_id,
    }

"""Schwab outside regular hours, pure: market hours as trading days, limit bodies, marks.

* ``GET /marketdata/v1/markets/equity?date=`` answers one day's
  ``sessionHours`` (``preMarket``, ``regularMarket``, ``postMarket``, each a list
  of ``{start, end}`` with an offset). An open day becomes the core's
  :class:`~st0x_liquidity.TradingDay`: regular from ``regularMarket``, the
  extended day from the first ``preMarket`` start to the last ``postMarket``
  end (None when Schwab lists none). A closed day is None.
* A hedge outside regular hours is a ``LIMIT`` order, ``duration`` ``DAY``,
  whole shares, in the Schwab session that fits the core's session:
  pre-market -> ``AM``, after-hours -> ``PM``, regular -> ``SEAMLESS`` (it keeps
  working after the close, like Alpaca's ``extended_hours`` day order).
  Schwab's API has no overnight session (the reference: EXTO exists only on
  thinkorswim), so an overnight order is refused here.
* The position mark is ``marketValue / quantity`` of the account position.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from st0x_liquidity import (
    Direction,
    FinalBrokerError,
    LimitOrder,
    Session,
    TradingDay,
    fmt,
    limit_tick,
)

from .parsing import AccountHoldings, SchwabReplyError, decode_json, parse_time

SCHWAB_SESSION = {Session.PRE: "AM", Session.POST: "PM", Session.REGULAR: "SEAMLESS"}


def _windows(sessions: Mapping[str, Any], key: str) -> list[tuple[datetime, datetime]]:
    raw = sessions.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SchwabReplyError(f"Schwab market hours {key} is not a list")
    windows = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise SchwabReplyError(f"Schwab market hours {key} entry is not an object")
        start, end = parse_time(item.get("start")), parse_time(item.get("end"))
        if start is None or end is None or end <= start:
            raise SchwabReplyError(f"Schwab market hours {key} has an unusable start/end")
        windows.append((start, end))
    return sorted(windows)


def parse_trading_day(body: bytes, asked: date) -> TradingDay | None:
    """One day's equity hours (``equity.EQ`` open, ``equity.equity`` closed) or None."""
    data = decode_json(body, "market hours")
    equity = data.get("equity") if isinstance(data, Mapping) else None
    if not isinstance(equity, Mapping) or not equity:
        raise SchwabReplyError("Schwab market hours reply has no equity section")
    product = equity.get("EQ") or equity.get("equity")
    if not isinstance(product, Mapping):
        product = next((v for v in equity.values() if isinstance(v, Mapping)), None)
    if not isinstance(product, Mapping):
        raise SchwabReplyError("Schwab market hours equity section is empty")
    if product.get("isOpen") is not True:
        return None
    sessions = product.get("sessionHours")
    if not isinstance(sessions, Mapping):
        raise SchwabReplyError("Schwab market hours of an open day lack sessionHours")
    regular = _windows(sessions, "regularMarket")
    if not regular:
        raise SchwabReplyError("Schwab market hours of an open day lack regularMarket")
    pre, post = _windows(sessions, "preMarket"), _windows(sessions, "postMarket")
    opens, closes = regular[0][0], regular[-1][1]
    return TradingDay(
        date=asked,
        regular_open=opens,
        regular_close=closes,
        extended_open=pre[0][0] if pre and pre[0][0] < opens else None,
        extended_close=post[-1][1] if post and post[-1][1] > closes else None,
    )


def limit_body(order: LimitOrder) -> dict[str, Any]:
    """The JSON of a Schwab limit order for ``order`` (checked: whole shares, grid price)."""
    session = SCHWAB_SESSION.get(order.session)
    if session is None:
        raise FinalBrokerError(
            f"Schwab has no {order.session.value} session for API orders; "
            "nothing is sent"
        )
    qty = order.quantity
    if not qty.is_finite() or qty <= 0 or qty != qty.to_integral_value():
        raise FinalBrokerError(f"Schwab takes whole shares only; cannot place {fmt(qty)} {order.symbol}")
    price = order.limit_price
    if not price.is_finite() or price <= 0:
        raise FinalBrokerError(f"limit price must be positive, got {price}")
    tick = limit_tick(price)
    if price != price.quantize(tick):
        raise FinalBrokerError(f"limit price {fmt(price)} is off the grid (steps of {tick})")
    return {
        "orderType": "LIMIT",
        "session": session,
        "duration": "DAY",
        "price": format(price.quantize(tick), "f"),
        "orderStrategyType": "SINGLE",
        "orderLegCollection": [
            {
                "instruction": "BUY" if order.side is Direction.BUY else "SELL",
                "quantity": int(qty),
                "instrument": {"symbol": str(order.symbol), "assetType": "EQUITY"},
            }
        ],
    }


def position_mark(holdings: AccountHoldings, symbol: str) -> Decimal | None:
    """``marketValue / quantity`` of the position in ``symbol`` (None: none held or no value)."""
    for held in holdings.positions:
        if held.symbol == symbol and held.quantity != 0 and held.market_value is not None:
            mark = held.market_value / held.quantity
            return mark if mark > 0 else None
    return None

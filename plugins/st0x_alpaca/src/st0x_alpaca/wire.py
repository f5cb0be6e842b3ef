"""Alpaca's JSON, read strictly into the core's values (shared by both plugins).

Every decimal is read as :class:`~decimal.Decimal` (JSON numbers included:
``parse_float=Decimal``), timestamps are RFC 3339 with up to nine fractional
digits, and anything unexpected becomes :class:`MalformedReplyError`, a
retryable broker error: the engine asks again later instead of crashing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from st0x_liquidity import (
    InvalidSymbolError,
    MarketClock,
    OrderState,
    OrderUpdate,
    Position,
    RetryableBrokerError,
    Symbol,
    to_decimal,
)

NEW_YORK = ZoneInfo("America/New_York")
QTY_DECIMALS = 9
"""Alpaca accepts fractional quantities with at most nine decimal places."""


class MalformedReplyError(RetryableBrokerError):
    """Alpaca answered 2xx with something this client cannot read."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def json_loads(data: bytes | str) -> Any:
    """Decode JSON with every non-integer number as an exact Decimal."""
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        text = str(exc)[:120]
        raise MalformedReplyError(f"invalid JSON ({text})") from None


# -- field readers -------------------------------------------------------------------


def _obj(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise MalformedReplyError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MalformedReplyError(f"{what}: {key} must be a string, got {_kind(value)}")
    return value


def _opt_str(data: Mapping[str, Any], key: str, what: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedReplyError(f"{what}: {key} must be a string or null, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _dec(data: Mapping[str, Any], key: str, what: str) -> Decimal:
    value = data.get(key)
    if value is None:
        raise MalformedReplyError(f"{what}: {key} is missing")
    try:
        return to_decimal(value, what=key)
    except ValueError as exc:
        raise MalformedReplyError(f"{what}: {exc}") from None


def _opt_dec(data: Mapping[str, Any], key: str, what: str) -> Decimal | None:
    if data.get(key) is None or data.get(key) == "":
        return None
    return _dec(data, key, what)


def _bool(data: Mapping[str, Any], key: str, what: str, default: bool | None = None) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise MalformedReplyError(f"{what}: {key} must be true or false, got {_kind(value)}")
    return value


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:?\d{2})$"
)


def parse_time(text: Any, what: str = "timestamp") -> datetime:
    """RFC 3339 with up to nine fractional digits (nanoseconds are truncated)."""
    if not isinstance(text, str):
        raise MalformedReplyError(f"{what} must be an RFC 3339 string, got {_kind(text)}")
    match = _RFC3339.match(text.strip())
    if match is None:
        raise MalformedReplyError(f"{what} is not an RFC 3339 time: {text[:60]!r}")
    day, clock, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{micros}{zone}")
    except ValueError:
        raise MalformedReplyError(f"{what} is not a valid time: {text[:60]!r}") from None


def _opt_time(data: Mapping[str, Any], key: str, what: str) -> datetime | None:
    value = data.get(key)
    return None if value is None else parse_time(value, f"{what}: {key}")


# -- orders --------------------------------------------------------------------------

LIVE_STATUSES = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "partially_filled",
        "pending_cancel",
        "pending_replace",
        "stopped",
        "held",
        "suspended",
    }
)
"""Statuses of an order that can still trade (or be cancelled) at Alpaca."""

DAY_DONE_STATUSES = frozenset({"done_for_day", "calculated"})
"""Done executing for the day: for our ``day`` orders, the filled quantity is final."""

CANCELLED_STATUSES = frozenset({"canceled", "expired", "replaced"})
FAILED_STATUSES = frozenset({"rejected"})

KNOWN_STATUSES = (
    LIVE_STATUSES | DAY_DONE_STATUSES | CANCELLED_STATUSES | FAILED_STATUSES | {"filled"}
)


@attrs.frozen
class AlpacaOrder:
    """The fields of an Alpaca order object that a hedger relies on."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    status: str
    qty: Decimal | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    updated_at: datetime | None
    raw: Mapping[str, Any] = attrs.field(repr=False, eq=False)

    def to_update(self) -> OrderUpdate:
        return order_update(self)


def parse_order(data: Any) -> AlpacaOrder:
    what = "order"
    obj = _obj(data, what)
    order_id = _str(obj, "id", what)
    try:
        uuid.UUID(order_id)
    except ValueError:
        raise MalformedReplyError(f"order id is not a UUID: {order_id[:60]!r}") from None
    what = f"order {order_id}"
    status = _str(obj, "status", what).strip().lower()
    if not status:
        raise MalformedReplyError(f"{what}: empty status")
    side = _str(obj, "side", what).strip().lower()
    if side not in ("buy", "sell"):
        raise MalformedReplyError(f"{what}: side must be buy or sell, got {side[:20]!r}")
    filled_qty = _opt_dec(obj, "filled_qty", what)
    if filled_qty is None:
        filled_qty = Decimal(0)
    if filled_qty < 0:
        raise MalformedReplyError(f"{what}: negative filled_qty")
    qty = _opt_dec(obj, "qty", what)
    if qty is not None and qty <= 0:
        raise MalformedReplyError(f"{what}: qty must be positive")
    avg = _opt_dec(obj, "filled_avg_price", what)
    if avg is not None and avg <= 0:
        raise MalformedReplyError(f"{what}: filled_avg_price must be positive")
    updated = None
    for key in ("updated_at", "filled_at", "canceled_at", "expired_at", "failed_at", "created_at"):
        updated = _opt_time(obj, key, what)
        if updated is not None:
            break
    return AlpacaOrder(
        id=order_id,
        client_order_id=_opt_str(obj, "client_order_id", what) or "",
        symbol=_str(obj, "symbol", what),
        side=side,
        status=status,
        qty=qty,
        filled_qty=filled_qty,
        filled_avg_price=avg,
        updated_at=updated,
        raw=obj,
    )


def _reason(order: AlpacaOrder) -> str:
    parts = [f"Alpaca status {order.status}"]
    for key in ("reject_reason", "cancel_reason", "failed_reason", "reason"):
        value = order.raw.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(value.strip()[:300])
            break
    if order.status == "replaced" and isinstance(order.raw.get("replaced_by"), str):
        parts.append(f"replaced by order {order.raw['replaced_by']}")
    if order.filled_qty > 0:
        qty = "?" if order.qty is None else format(order.qty, "f")
        parts.append(f"filled {format(order.filled_qty, 'f')} of {qty}")
    return "; ".join(parts)


def order_update(order: AlpacaOrder) -> OrderUpdate:
    """Map an Alpaca order to the core's :class:`~st0x_liquidity.OrderUpdate`.

    Every documented status has a place; an unknown status keeps the order live
    (never claim a terminal state the broker did not state) with a reason.
    """
    status = order.status
    filled = order.filled_qty
    if filled > 0 and order.filled_avg_price is None:
        raise MalformedReplyError(
            f"order {order.id}: status {status} with filled_qty but no filled_avg_price"
        )
    price = order.filled_avg_price if filled > 0 else None
    reason: str | None = None
    if status == "filled":
        if filled <= 0:
            raise MalformedReplyError(f"order {order.id}: filled without a filled_qty")
        state = OrderState.FILLED
    elif status in DAY_DONE_STATUSES:
        complete = order.qty is not None and filled >= order.qty
        state = OrderState.FILLED if complete else OrderState.CANCELLED
        reason = None if complete else _reason(order)
    elif status in CANCELLED_STATUSES:
        state = OrderState.CANCELLED
        reason = _reason(order)
    elif status in FAILED_STATUSES:
        state = OrderState.FAILED
        reason = _reason(order)
    else:
        state = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.SUBMITTED
        if status not in LIVE_STATUSES:
            reason = f"unrecognised Alpaca status {status[:40]!r}; treated as still open"
        elif status in ("held", "suspended", "stopped"):
            reason = f"Alpaca status {status}"
    return OrderUpdate(
        broker_order_id=order.id,
        state=state,
        filled_quantity=filled,
        average_price=price,
        reason=reason,
        client_order_id=order.client_order_id or None,
        updated_at=order.updated_at,
    )


# -- account, positions, clock, calendar ----------------------------------------------


@attrs.frozen
class AlpacaAccount:
    id: str
    status: str
    cash: Decimal
    trading_blocked: bool
    account_blocked: bool


def parse_account(data: Any) -> AlpacaAccount:
    what = "account"
    obj = _obj(data, what)
    return AlpacaAccount(
        id=_str(obj, "id", what),
        status=_str(obj, "status", what).upper(),
        cash=_dec(obj, "cash", what),
        trading_blocked=_bool(obj, "trading_blocked", what, False),
        account_blocked=_bool(obj, "account_blocked", what, False),
    )


@attrs.frozen
class Positions:
    equities: tuple[Position, ...]
    skipped: tuple[str, ...]
    """Symbols that are not equities (crypto such as ``USDCUSD``), left out."""


def parse_positions(data: Any) -> Positions:
    if not isinstance(data, list):
        raise MalformedReplyError(f"positions: expected a JSON array, got {_kind(data)}")
    equities: list[Position] = []
    skipped: list[str] = []
    for index, item in enumerate(data):
        what = f"position {index}"
        obj = _obj(item, what)
        raw_symbol = _str(obj, "symbol", what)
        if obj.get("asset_class", "us_equity") != "us_equity":
            skipped.append(raw_symbol[:20])
            continue
        qty = _dec(obj, "qty", what)
        if obj.get("side") == "short" and qty > 0:
            qty = -qty
        value = _opt_dec(obj, "market_value", what)
        try:
            symbol = Symbol(raw_symbol)
        except (InvalidSymbolError, ValueError):
            skipped.append(raw_symbol[:20])
            continue
        equities.append(Position(symbol, qty, value))
    return Positions(tuple(sorted(equities, key=lambda p: p.symbol)), tuple(skipped))


def parse_clock(data: Any) -> MarketClock:
    what = "clock"
    obj = _obj(data, what)
    is_open = _bool(obj, "is_open", what)
    next_open = _opt_time(obj, "next_open", what)
    next_close = _opt_time(obj, "next_close", what)
    return MarketClock(is_open=is_open, next_open=next_open, next_close=next_close)


@attrs.frozen
class TradingDay:
    day: date
    open: datetime
    close: datetime


_HHMM = re.compile(r"^(\d{2}):?(\d{2})$")


def _hhmm(value: Any, what: str) -> time:
    if not isinstance(value, str):
        raise MalformedReplyError(f"{what} must be HH:MM text, got {_kind(value)}")
    match = _HHMM.match(value.strip())
    if match is None:
        raise MalformedReplyError(f"{what} is not HH:MM: {value[:20]!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise MalformedReplyError(f"{what} is not a time of day: {value[:20]!r}")
    return time(hour, minute)


def parse_calendar(data: Any) -> list[TradingDay]:
    """``[{date, open, close, ...}]``; times are New York wall-clock (``HH:MM``)."""
    if not isinstance(data, list):
        raise MalformedReplyError(f"calendar: expected a JSON array, got {_kind(data)}")
    days: list[TradingDay] = []
    for index, item in enumerate(data):
        what = f"calendar day {index}"
        obj = _obj(item, what)
        text = _str(obj, "date", what)
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            raise MalformedReplyError(f"{what}: date is not YYYY-MM-DD: {text[:20]!r}") from None
        opens = datetime.combine(day, _hhmm(obj.get("open"), f"{what}: open"), NEW_YORK)
        closes = datetime.combine(day, _hhmm(obj.get("close"), f"{what}: close"), NEW_YORK)
        if closes <= opens:
            raise MalformedReplyError(f"{what}: close is not after open")
        days.append(TradingDay(day, opens, closes))
    return sorted(days, key=lambda d: d.day)


def clock_from_calendar(days: Sequence[TradingDay], now: datetime) -> MarketClock:
    """Regular-hours clock at ``now`` from calendar days covering today onward."""
    now = now.astimezone(UTC)
    upcoming = [d for d in days if d.close > now]
    if not upcoming:
        return MarketClock(is_open=False)
    first = upcoming[0]
    if first.open <= now:
        following = upcoming[1].open if len(upcoming) > 1 else None
        return MarketClock(is_open=True, next_open=following, next_close=first.close)
    return MarketClock(is_open=False, next_open=first.open, next_close=first.close)


def new_york_today(now: datetime) -> date:
    return now.astimezone(NEW_YORK).date()


CALENDAR_LOOKAHEAD = timedelta(days=10)

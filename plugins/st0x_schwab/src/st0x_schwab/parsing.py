"""Pure decoding of Schwab replies: no I/O, every failure a classified BrokerError.

Numbers are decoded as :class:`~decimal.Decimal` straight from the JSON text
(``parse_float=Decimal``), so no float ever touches a price or a quantity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from typing import Any
from urllib.parse import urlsplit

import attrs

from st0x_liquidity import OrderState, OrderUpdate, RetryableBrokerError

_WORKING_NOTE = "still working at Schwab"

TERMINAL_FAILED = {"REJECTED": OrderState.FAILED}
TERMINAL_CANCELLED = {
    "CANCELED": OrderState.CANCELLED,
    "EXPIRED": OrderState.CANCELLED,
    # We never replace orders; a REPLACED order was changed by hand at Schwab and
    # its replacement is not followed (documented in docs/brokers/schwab.md).
    "REPLACED": OrderState.CANCELLED,
}


class SchwabReplyError(RetryableBrokerError):
    """Schwab answered with something this plugin cannot read; ask again later."""


def _parse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def decode_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(
            body.decode("utf-8"), parse_float=Decimal, parse_constant=_parse_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SchwabReplyError(f"Schwab sent an unreadable {what} reply") from None


def _number(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise SchwabReplyError(f"Schwab {what} is not a number")
    result = Decimal(value)
    if not result.is_finite():
        raise SchwabReplyError(f"Schwab {what} is not finite")
    return result


def parse_time(value: Any) -> datetime | None:
    """Schwab timestamps (``2025-08-29T17:15:18+0000``, ``…Z``, fractions); None if unusable."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """The form Schwab's order listing takes: ``2024-03-29T00:00:00.000Z``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# -- tokens --------------------------------------------------------------------------


@attrs.frozen(repr=False)
class TokenReply:
    access_token: str
    refresh_token: str
    expires_in: int

    def __repr__(self) -> str:
        return f"TokenReply(<tokens hidden>, expires_in={self.expires_in})"


def parse_token_reply(body: bytes) -> TokenReply:
    data = decode_json(body, "token")
    if not isinstance(data, Mapping):
        raise SchwabReplyError("Schwab token reply is not a JSON object")
    access, refresh = data.get("access_token"), data.get("refresh_token")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise SchwabReplyError("Schwab token reply lacks access_token or refresh_token")
    expires = data.get("expires_in", 1800)
    if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
        expires = 1800
    return TokenReply(access, refresh, min(expires, 1800))


def error_message(body: bytes, limit: int = 300) -> str:
    """A short, printable summary of a Schwab error body (``message``/``errors`` or OAuth ``error``)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        data = None
    parts: list[str] = []
    if isinstance(data, Mapping):
        for key in ("message", "error", "error_description"):
            value = data.get(key)
            if isinstance(value, str):
                parts.append(value)
        errors = data.get("errors")
        if isinstance(errors, Sequence) and not isinstance(errors, str):
            for item in errors[:5]:
                if isinstance(item, str):
                    parts.append(item)
                elif isinstance(item, Mapping):
                    detail = item.get("detail") or item.get("title") or item.get("message")
                    if isinstance(detail, str):
                        parts.append(detail)
    text = "; ".join(parts) if parts else "no readable error message"
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- accounts ------------------------------------------------------------------------


@attrs.frozen
class Account:
    number: str
    hash_value: str


def parse_accounts(body: bytes) -> list[Account]:
    data = decode_json(body, "accountNumbers")
    if not isinstance(data, list):
        raise SchwabReplyError("Schwab accountNumbers reply is not a list")
    accounts: list[Account] = []
    for item in data:
        if not isinstance(item, Mapping):
            raise SchwabReplyError("Schwab accountNumbers entry is not an object")
        number, hash_value = item.get("accountNumber"), item.get("hashValue")
        if isinstance(number, int) and not isinstance(number, bool):
            number = str(number)
        if not isinstance(number, str) or not isinstance(hash_value, str) or not hash_value:
            raise SchwabReplyError("Schwab accountNumbers entry lacks accountNumber/hashValue")
        accounts.append(Account(number, hash_value))
    return accounts


def order_id_from_location(location: str | None) -> str | None:
    """The order id, the last path segment of ``…/accounts/{hash}/orders/{id}``."""
    if not location:
        return None
    path = urlsplit(location).path.rstrip("/")
    if "/accounts/" not in path or "/orders/" not in path:
        return None
    order_id = path.rsplit("/", 1)[-1]
    return order_id if order_id.isdigit() and len(order_id) <= 20 else None


# -- orders --------------------------------------------------------------------------


@attrs.frozen
class SchwabOrder:
    """The fields of a Schwab order this plugin reads."""

    order_id: str
    status: str | None
    symbol: str | None
    instruction: str | None
    quantity: Decimal | None
    entered_time: datetime | None
    close_time: datetime | None
    filled_quantity: Decimal
    average_price: Decimal | None
    status_description: str | None


def _legs(data: Mapping[str, Any]) -> tuple[Decimal, Decimal | None]:
    activities = data.get("orderActivityCollection", [])
    if activities is None:
        activities = []
    if not isinstance(activities, list):
        raise SchwabReplyError("Schwab orderActivityCollection is not a list")
    total_qty = Decimal(0)
    total_value = Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 60
        for activity in activities:
            if not isinstance(activity, Mapping):
                raise SchwabReplyError("Schwab order activity is not an object")
            kind = activity.get("activityType", "EXECUTION")
            if kind != "EXECUTION":
                continue
            legs = activity.get("executionLegs", [])
            if legs is None:
                legs = []
            if not isinstance(legs, list):
                raise SchwabReplyError("Schwab executionLegs is not a list")
            for leg in legs:
                if not isinstance(leg, Mapping):
                    raise SchwabReplyError("Schwab execution leg is not an object")
                qty = _number(leg.get("quantity"), "execution leg quantity")
                price = _number(leg.get("price"), "execution leg price")
                if qty < 0 or price < 0:
                    raise SchwabReplyError("Schwab execution leg has a negative quantity or price")
                if qty == 0:
                    continue
                total_qty += qty
                total_value += qty * price
        if total_qty == 0:
            return Decimal(0), None
        average = (total_value / total_qty).quantize(Decimal("1e-10")).normalize()
    return total_qty.normalize(), average


def parse_order(data: Any, fallback_id: str | None = None) -> SchwabOrder:
    if not isinstance(data, Mapping):
        raise SchwabReplyError("Schwab order is not a JSON object")
    raw_id = data.get("orderId", fallback_id)
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or str(raw_id) == "":
        raise SchwabReplyError("Schwab order lacks an orderId")
    status = data.get("status")
    if status is not None and not isinstance(status, str):
        raise SchwabReplyError("Schwab order status is not text")
    symbol = instruction = None
    quantity: Decimal | None = None
    legs = data.get("orderLegCollection")
    if isinstance(legs, list) and len(legs) == 1 and isinstance(legs[0], Mapping):
        leg = legs[0]
        instrument = leg.get("instrument")
        if isinstance(instrument, Mapping) and isinstance(instrument.get("symbol"), str):
            symbol = instrument["symbol"]
        if isinstance(leg.get("instruction"), str):
            instruction = leg["instruction"]
        if leg.get("quantity") is not None:
            quantity = _number(leg.get("quantity"), "order leg quantity")
    if quantity is None and data.get("quantity") is not None:
        quantity = _number(data.get("quantity"), "order quantity")
    filled, average = _legs(data)
    description = data.get("statusDescription")
    return SchwabOrder(
        order_id=str(raw_id),
        status=status,
        symbol=symbol,
        instruction=instruction,
        quantity=quantity,
        entered_time=parse_time(data.get("enteredTime")),
        close_time=parse_time(data.get("closeTime")),
        filled_quantity=filled,
        average_price=average,
        status_description=description[:300] if isinstance(description, str) else None,
    )


def order_update(order: SchwabOrder, client_order_id: str | None = None) -> OrderUpdate:
    """Map a Schwab order to the core's order state (see docs/brokers/schwab.md)."""
    status = order.status
    filled = order.filled_quantity
    avg = order.average_price
    if status == "FILLED":
        complete = filled > 0 and (order.quantity is None or filled >= order.quantity)
        # Schwab reports FILLED before or with its execution legs; without the
        # legs there is no price, so the order stays non-terminal until they appear.
        state = OrderState.FILLED if complete else (
            OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.SUBMITTED
        )
        return OrderUpdate(
            order.order_id,
            state,
            filled_quantity=filled,
            average_price=avg,
            reason=None if complete else "FILLED at Schwab, execution legs not yet reported",
            client_order_id=client_order_id,
            updated_at=order.close_time,
        )
    terminal = TERMINAL_FAILED.get(status or "") or TERMINAL_CANCELLED.get(status or "")
    if terminal is not None:
        reason = str(status)
        if order.status_description:
            reason = f"{status}: {order.status_description}"
        if status == "REPLACED":
            reason += " (replaced outside st0x; the replacement order is not followed)"
        return OrderUpdate(
            order.order_id,
            terminal,
            filled_quantity=filled,
            average_price=avg,
            reason=reason,
            client_order_id=client_order_id,
            updated_at=order.close_time,
        )
    return OrderUpdate(
        order.order_id,
        OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.SUBMITTED,
        filled_quantity=filled,
        average_price=avg,
        reason=None,
        client_order_id=client_order_id,
        updated_at=None,
    )


def parse_order_list(body: bytes) -> list[SchwabOrder]:
    data = decode_json(body, "order list")
    if not isinstance(data, list):
        raise SchwabReplyError("Schwab order list is not a list")
    return [parse_order(item) for item in data]


# -- market hours --------------------------------------------------------------------


@attrs.frozen
class MarketDay:
    day: date | None
    is_open: bool
    start: datetime | None
    end: datetime | None


def parse_market_hours(body: bytes) -> MarketDay:
    """Accept ``equity.EQ`` (open days) and ``equity.equity`` (closed days) alike."""
    data = decode_json(body, "market hours")
    if not isinstance(data, Mapping):
        raise SchwabReplyError("Schwab market hours reply is not an object")
    equity = data.get("equity")
    if not isinstance(equity, Mapping) or not equity:
        raise SchwabReplyError("Schwab market hours reply has no equity section")
    product = equity.get("EQ")
    if not isinstance(product, Mapping):
        product = equity.get("equity")
    if not isinstance(product, Mapping):
        product = next((v for v in equity.values() if isinstance(v, Mapping)), None)
    if product is None:
        raise SchwabReplyError("Schwab market hours equity section is empty")
    day: date | None = None
    if isinstance(product.get("date"), str):
        try:
            day = date.fromisoformat(product["date"])
        except ValueError:
            day = None
    is_open = product.get("isOpen") is True
    start = end = None
    sessions = product.get("sessionHours")
    if isinstance(sessions, Mapping):
        regular = sessions.get("regularMarket")
        if isinstance(regular, list) and regular and isinstance(regular[0], Mapping):
            start = parse_time(regular[0].get("start"))
            end = parse_time(regular[0].get("end"))
    if start is None or end is None or end <= start:
        start = end = None
        is_open = False
    return MarketDay(day, is_open, start, end)


def retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, 600.0)


# -- account positions -----------------------------------------------------------------

INVENTORY_ASSET_TYPES = frozenset({"EQUITY", "COLLECTIVE_INVESTMENT"})
"""Stocks and ETFs (Schwab files ETFs as ``COLLECTIVE_INVESTMENT``); options,
bonds and money-market funds are not inventory st0x hedges with."""


@attrs.frozen
class AccountPosition:
    symbol: str
    quantity: Decimal
    market_value: Decimal | None


@attrs.frozen
class AccountHoldings:
    positions: tuple[AccountPosition, ...]
    cash: Decimal
    skipped: tuple[str, ...]
    """Asset types or symbols left out (for a log line), never silently."""


def parse_account_positions(body: bytes) -> AccountHoldings:
    """``GET /trader/v1/accounts/{hash}?fields=positions``: signed shares and cash.

    Quantity is ``longQuantity − shortQuantity``; cash is
    ``currentBalances.cashBalance`` (``cashAvailableForTrading`` when absent).
    Schwab writes class shares with a slash (``BRK/B``); they become ``BRK.B``.
    """
    data = decode_json(body, "account")
    if not isinstance(data, Mapping):
        raise SchwabReplyError("Schwab account reply is not an object")
    account = data.get("securitiesAccount")
    if not isinstance(account, Mapping):
        raise SchwabReplyError("Schwab account reply has no securitiesAccount")
    balances = account.get("currentBalances")
    if not isinstance(balances, Mapping):
        raise SchwabReplyError("Schwab account reply has no currentBalances")
    raw_cash = balances.get("cashBalance", balances.get("cashAvailableForTrading"))
    if raw_cash is None:
        raise SchwabReplyError("Schwab account reply has no cashBalance")
    cash = _number(raw_cash, "cashBalance")
    raw_positions = account.get("positions", [])
    if raw_positions is None:
        raw_positions = []
    if not isinstance(raw_positions, list):
        raise SchwabReplyError("Schwab account positions is not a list")
    totals: dict[str, tuple[Decimal, Decimal | None]] = {}
    skipped: list[str] = []
    for item in raw_positions:
        if not isinstance(item, Mapping):
            raise SchwabReplyError("Schwab account position is not an object")
        instrument = item.get("instrument")
        if not isinstance(instrument, Mapping):
            raise SchwabReplyError("Schwab account position has no instrument")
        symbol, asset = instrument.get("symbol"), instrument.get("assetType")
        if not isinstance(symbol, str) or not symbol:
            raise SchwabReplyError("Schwab account position has no symbol")
        # A set lookup of an unhashable value (a list, say) would raise TypeError.
        if not isinstance(asset, str) or asset not in INVENTORY_ASSET_TYPES:
            skipped.append(f"{symbol[:20]} ({str(asset)[:30]})")
            continue
        long_qty = _number(item.get("longQuantity", 0), "longQuantity")
        short_qty = _number(item.get("shortQuantity", 0), "shortQuantity")
        value = item.get("marketValue")
        market_value = None if value is None else _number(value, "marketValue")
        ticker = symbol.strip().upper().replace("/", ".")
        quantity, known_value = totals.get(ticker, (Decimal(0), Decimal(0)))
        merged_value = (
            None if market_value is None or known_value is None else known_value + market_value
        )
        totals[ticker] = (quantity + long_qty - short_qty, merged_value)
    return AccountHoldings(
        positions=tuple(
            AccountPosition(t, q.normalize() if q else Decimal(0), v)
            for t, (q, v) in sorted(totals.items())
        ),
        cash=cash,
        skipped=tuple(skipped),
    )

"""The Broker API's USDC objects read strictly into the core's values (pure code).

Conversion orders are ordinary order objects for the crypto pair ``USDCUSD``
(Alpaca answers the pair as ``USDC/USD`` in newer replies; both spellings are
accepted). Wallet transfers, whitelist entries and the deposit wallet follow
the shapes in ``brokers.md`` §3.7. Anything unreadable becomes one
:class:`~st0x_alpaca.wire.MalformedReplyError` naming the object and field,
never a ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
from st0x_alpaca.wire import AlpacaOrder, MalformedReplyError, order_update, parse_order, parse_time

from st0x_liquidity import CashConversion, FinalBrokerError, WalletTransfer, fmt, to_decimal

USDC = "USDC"
CONVERSION_SYMBOL = "USDCUSD"
CONVERSION_SYMBOLS = frozenset({"USDCUSD", "USDC/USD"})
"""How Alpaca spells the pair: as sent, and as newer replies (and crypto assets) show it."""
USDC_DECIMALS = 6
DIRECTIONS = frozenset({"INCOMING", "OUTGOING"})
WHITELIST_STATUSES = frozenset({"PENDING", "APPROVED", "REJECTED"})


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _obj(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise MalformedReplyError(f"{what}: expected a JSON object, got {_kind(data)}")
    return data


def _list(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise MalformedReplyError(f"{what}: expected a JSON array, got {_kind(data)}")
    return data


def _text(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedReplyError(f"{what}: {key} must be a non-empty string, got {_kind(value)}")
    return value.strip()


def _opt_text(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedReplyError(f"{what}: {key} must be a string or null, got {_kind(value)}")
    return value.strip() or None


def _amount(
    obj: Mapping[str, Any], key: str, what: str, *, default: Decimal | None = None
) -> Decimal:
    value = obj.get(key)
    if value is None or value == "":
        if default is not None:
            return default
        raise MalformedReplyError(f"{what}: {key} is missing")
    try:
        number = to_decimal(value, what=key)
    except ValueError as exc:
        raise MalformedReplyError(f"{what}: {exc}") from None
    if number < 0:
        raise MalformedReplyError(f"{what}: {key} must not be negative, got {fmt(number)}")
    return number


# -- amounts we send -------------------------------------------------------------------


def usdc_text(amount: Decimal, what: str = "USDC amount") -> str:
    """``amount`` as Alpaca's decimal string; refuses what USDC's 6 decimals cannot hold.

    Refused (never rounded) before anything is sent, so the caller's books and
    the broker's always agree on the amount.
    """
    if isinstance(amount, bool) or not isinstance(amount, Decimal) or not amount.is_finite():
        raise FinalBrokerError(f"{what} must be a finite Decimal, got {amount!r}")
    if amount <= 0:
        raise FinalBrokerError(f"{what} must be positive, got {fmt(amount)}")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -USDC_DECIMALS:
        raise FinalBrokerError(
            f"{what} {fmt(amount)} has more than {USDC_DECIMALS} decimal places (USDC's precision)"
        )
    return fmt(amount)


# -- conversions -----------------------------------------------------------------------


def conversion_body(side: str, quantity: Decimal, client_order_id: str) -> dict[str, object]:
    """``POST …/orders`` body of a USD<->USDC market conversion (``qty`` in USDC)."""
    if side not in ("buy", "sell"):
        raise FinalBrokerError(f"conversion side must be 'buy' or 'sell', got {side!r}")
    if not client_order_id:
        raise FinalBrokerError("client_order_id must not be empty")
    return {
        "symbol": CONVERSION_SYMBOL,
        "qty": usdc_text(quantity, "conversion quantity"),
        "side": side,
        "type": "market",
        "time_in_force": "gtc",
        "client_order_id": client_order_id,
    }


def _fees(order: AlpacaOrder) -> Decimal:
    """USD fees Alpaca reports on the order (``commission``, else ``fees``); 0 if none."""
    for key in ("commission", "fees"):
        value = order.raw.get(key)
        if value is not None and value != "":
            return _amount(order.raw, key, f"order {order.id}")
    return Decimal(0)


def conversion_from_order(order: AlpacaOrder, client_order_id: str) -> CashConversion:
    """Map an order object to a :class:`~st0x_liquidity.CashConversion`.

    Statuses map like hedge orders (``filled``, ``partially_filled``,
    ``canceled``/``expired`` -> ``cancelled``, ``rejected`` -> ``failed``; the
    rest are live). ``client_order_id`` is the caller's (Alpaca may hold a
    shortened one).
    """
    if order.symbol.upper() not in CONVERSION_SYMBOLS:
        raise FinalBrokerError(
            f"order {order.id} ({client_order_id}) is for {order.symbol[:20]!r}, "
            "not a USDCUSD conversion"
        )
    update = order_update(order)
    if order.qty is None:
        raise MalformedReplyError(f"order {order.id}: a conversion without qty")
    return CashConversion(
        order_id=order.id,
        client_order_id=client_order_id,
        side=order.side,
        status=update.state.value,
        quantity=order.qty,
        filled_quantity=update.filled_quantity if order.filled_qty > 0 else None,
        filled_price=update.average_price,
        fees=_fees(order),
        reason=update.reason,
    )


def parse_conversion(data: Any, client_order_id: str) -> CashConversion:
    return conversion_from_order(parse_order(data), client_order_id)


# -- wallet ----------------------------------------------------------------------------


def parse_transfer(data: Any) -> WalletTransfer:
    """One wallet transfer: ``id``, ``direction``, ``status``, ``amount`` and ``asset``
    are required; fees default to 0, the rest to None; ``tx_hash`` lower-cased;
    ``created_at`` rewritten as Python's ISO format (microseconds, ``+00:00``)."""
    obj = _obj(data, "transfer")
    transfer_id = _text(obj, "id", "transfer")
    what = f"transfer {transfer_id[:60]}"
    direction = _text(obj, "direction", what).upper()
    if direction not in DIRECTIONS:
        raise MalformedReplyError(
            f"{what}: direction must be INCOMING or OUTGOING, got {direction[:20]!r}"
        )
    tx_hash = _opt_text(obj, "tx_hash", what)
    created = _opt_text(obj, "created_at", what)
    if created is not None:
        # One spelling consumers can read with datetime.fromisoformat (Alpaca
        # sends up to nine fractional digits, which Python 3.11 cannot parse).
        created = parse_time(created, f"{what}: created_at").isoformat()
    return WalletTransfer(
        transfer_id=transfer_id,
        direction=direction,
        status=_text(obj, "status", what).upper(),
        asset=_text(obj, "asset", what).upper(),
        amount=_amount(obj, "amount", what),
        tx_hash=tx_hash.lower() if tx_hash else None,
        from_address=_opt_text(obj, "from_address", what),
        to_address=_opt_text(obj, "to_address", what),
        network_fee=_amount(obj, "network_fee", what, default=Decimal(0)),
        fees=_amount(obj, "fees", what, default=Decimal(0)),
        created_at=created,
    )


def _newest_first(transfer: WalletTransfer) -> tuple[int, datetime | None]:
    return (0, None) if transfer.created_at is None else (1, parse_time(transfer.created_at))


def parse_transfers(data: Any) -> list[WalletTransfer]:
    """Every transfer of the list, newest first (those without a time last, in reply order)."""
    transfers = [parse_transfer(item) for item in _list(data, "transfers")]
    dated = sorted(
        (t for t in transfers if t.created_at is not None),
        key=lambda t: parse_time(t.created_at),
        reverse=True,
    )
    return dated + [t for t in transfers if t.created_at is None]


@attrs.frozen
class WhitelistEntry:
    entry_id: str
    address: str
    asset: str
    status: str
    chain: str | None = None


def parse_whitelist_entry(data: Any) -> WhitelistEntry:
    obj = _obj(data, "whitelist entry")
    entry_id = _text(obj, "id", "whitelist entry")
    what = f"whitelist entry {entry_id[:60]}"
    return WhitelistEntry(
        entry_id=entry_id,
        address=_text(obj, "address", what),
        asset=_text(obj, "asset", what).upper(),
        status=_text(obj, "status", what).upper(),
        chain=_opt_text(obj, "chain", what),
    )


def parse_whitelist(data: Any) -> list[WhitelistEntry]:
    return [parse_whitelist_entry(item) for item in _list(data, "whitelist")]


def whitelist_status(entries: list[WhitelistEntry], address: str, asset: str = USDC) -> str | None:
    """The status of ``address`` for ``asset``: address compared case-insensitively,
    chain not compared (Alpaca answers ``ETH`` for ``ethereum``). Several entries:
    ``APPROVED`` wins, then ``PENDING``, then the rest."""
    wanted = address.strip().lower()
    found = [e.status for e in entries if e.address.lower() == wanted and e.asset == asset.upper()]
    for status in ("APPROVED", "PENDING"):
        if status in found:
            return status
    return found[0] if found else None


def parse_deposit_address(data: Any) -> str:
    """``{asset_id, address, created_at}`` (a one-element list is accepted too)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    obj = _obj(data, "deposit wallet")
    address = _text(obj, "address", "deposit wallet")
    if not (address.startswith("0x") and len(address) == 42):
        raise MalformedReplyError(
            f"deposit wallet: address is not an EVM address: {address[:60]!r}"
        )
    try:
        int(address[2:], 16)
    except ValueError:
        raise MalformedReplyError(f"deposit wallet: address is not hex: {address[:60]!r}") from None
    return address


def usdc_position(data: Any) -> Decimal:
    """USDC held at the broker, read from the positions list (the ``USDCUSD``
    crypto position; 0 when there is none)."""
    total = Decimal(0)
    for index, item in enumerate(_list(data, "positions")):
        obj = _obj(item, f"position {index}")
        symbol = obj.get("symbol")
        if not isinstance(symbol, str) or symbol.upper() not in CONVERSION_SYMBOLS | {USDC}:
            continue
        if obj.get("asset_class", "crypto") != "crypto":
            continue
        total += _amount(obj, "qty", f"position {symbol}")
    return total

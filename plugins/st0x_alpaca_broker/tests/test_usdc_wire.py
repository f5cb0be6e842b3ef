"""The USDC reply parsers: documented shapes read exactly, anything else one clear error."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from st0x_alpaca.wire import MalformedReplyError
from st0x_alpaca_broker.wallet_wire import (
    WhitelistEntry,
    parse_conversion,
    parse_deposit_address,
    parse_transfer,
    parse_transfers,
    parse_whitelist,
    usdc_position,
    usdc_text,
    whitelist_status,
)

from st0x_liquidity import FinalBrokerError

TRANSFER = {
    "id": "a9d6cc86-3a45-4d3f-bb0e-6c5e46d2b1f0",
    "tx_hash": "0xABCDEF" + "0" * 58,
    "direction": "INCOMING",
    "status": "COMPLETE",
    "amount": "75.5",
    "usd_value": "75.49",
    "network_fee": "0.1",
    "fees": "0",
    "chain": "ETH",
    "asset": "USDC",
    "from_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "to_address": "0x42a76c0e4b4b8a1bb7e5b0f5a0d5c0e4b4b8a1bb",
    "created_at": "2025-03-01T10:00:00.123456789Z",
}

ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "usdc-1",
    "symbol": "USDC/USD",
    "asset_class": "crypto",
    "side": "buy",
    "status": "filled",
    "qty": "100",
    "filled_qty": "100",
    "filled_avg_price": "1.0001",
    "commission": "0.05",
    "created_at": "2025-03-01T10:00:00Z",
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def test_documented_transfer_is_read_whole() -> None:
    t = parse_transfer(TRANSFER)
    assert (t.transfer_id, t.direction, t.status, t.asset) == (
        TRANSFER["id"],
        "INCOMING",
        "COMPLETE",
        "USDC",
    )
    assert t.amount == Decimal("75.5") and t.network_fee == Decimal("0.1") and t.fees == 0
    assert t.tx_hash == TRANSFER["tx_hash"].lower()
    assert t.from_address == TRANSFER["from_address"]
    assert t.created_at == "2025-03-01T10:00:00.123456+00:00"  # fromisoformat-readable


def test_optional_transfer_fields_may_be_missing() -> None:
    bare = {k: TRANSFER[k] for k in ("id", "direction", "status", "amount", "asset")}
    t = parse_transfer({**bare, "status": "pending", "tx_hash": ""})
    assert t.status == "PENDING" and t.tx_hash is None and t.network_fee == 0
    assert t.from_address is None and t.created_at is None


def test_transfers_are_newest_first() -> None:
    older = {**TRANSFER, "id": "old", "created_at": "2025-03-01T09:00:00-05:00"}
    newer = {**TRANSFER, "id": "new", "created_at": "2025-03-01T14:30:00Z"}
    undated = {**TRANSFER, "id": "undated", "created_at": None}
    assert [t.transfer_id for t in parse_transfers([older, undated, newer])] == [
        "new",
        "old",
        "undated",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "id must be a non-empty string"),
        ({"amount": None}, "amount is missing"),
        ({"amount": "lots"}, "not a decimal"),
        ({"amount": "-1"}, "must not be negative"),
        ({"amount": 1.5}, "not a float"),
        ({"direction": "UP"}, "INCOMING or OUTGOING"),
        ({"tx_hash": 7}, "tx_hash must be a string"),
        ({"created_at": "yesterday"}, "RFC 3339"),
    ],
)
def test_bad_transfer_fields_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedReplyError, match=message):
        parse_transfer({**TRANSFER, **change})


def test_conversion_maps_fill_price_and_commission() -> None:
    c = parse_conversion(ORDER, "usdc-1")
    assert (c.status, c.side, c.quantity, c.filled_quantity) == (
        "filled",
        "buy",
        Decimal(100),
        Decimal(100),
    )
    assert c.filled_price == Decimal("1.0001") and c.fees == Decimal("0.05")
    live = parse_conversion({**ORDER, "status": "new", "filled_qty": "0"}, "usdc-1")
    assert (
        live.status == "submitted" and live.filled_quantity is None and live.fees == Decimal("0.05")
    )
    partial = parse_conversion({**ORDER, "status": "partially_filled", "filled_qty": "40"}, "x")
    assert partial.status == "partially_filled" and partial.filled_quantity == 40
    gone = parse_conversion({**ORDER, "status": "canceled", "filled_qty": "0"}, "x")
    assert gone.status == "cancelled" and gone.reason
    assert parse_conversion({**ORDER, "symbol": "USDCUSD", "commission": None}, "x").fees == 0
    with pytest.raises(FinalBrokerError, match="not a USDCUSD conversion"):
        parse_conversion({**ORDER, "symbol": "AAPL"}, "x")
    with pytest.raises(MalformedReplyError, match="filled_avg_price"):
        parse_conversion({**ORDER, "filled_avg_price": None}, "x")


def test_whitelist_match_ignores_case_and_chain() -> None:
    entries = parse_whitelist(
        [
            {
                "id": "1",
                "address": "0xAbC" + "0" * 37,
                "asset": "usdc",
                "chain": "ETH",
                "status": "PENDING",
            },
            {
                "id": "2",
                "address": "0xabc" + "0" * 37,
                "asset": "USDC",
                "chain": "SOL",
                "status": "APPROVED",
            },
            {"id": "3", "address": "0xdef" + "0" * 37, "asset": "BTC", "status": "APPROVED"},
        ]
    )
    assert whitelist_status(entries, "0xABC" + "0" * 37) == "APPROVED"
    assert whitelist_status(entries[:1], "0xabc" + "0" * 37) == "PENDING"
    assert whitelist_status(entries, "0xdef" + "0" * 37) is None  # BTC only


def test_deposit_address_and_usdc_position() -> None:
    address = "0x42a76c0e4b4b8a1bb7e5b0f5a0d5c0e4b4b8a1bb"
    assert parse_deposit_address({"asset_id": "x", "address": address}) == address
    assert parse_deposit_address([{"address": address}]) == address
    with pytest.raises(MalformedReplyError, match="address"):
        parse_deposit_address({"asset_id": "x"})
    rows = [
        {"symbol": "AAPL", "asset_class": "us_equity", "qty": "3"},
        {"symbol": "USDCUSD", "asset_class": "crypto", "qty": "12.5"},
    ]
    assert usdc_position(rows) == Decimal("12.5") and usdc_position([]) == 0


@settings(max_examples=300, deadline=None)
@given(data=json_values)
def test_parsers_never_crash_on_garbage(data: Any) -> None:
    for parse in (
        parse_transfer,
        parse_transfers,
        parse_whitelist,
        parse_deposit_address,
        usdc_position,
    ):
        try:
            parse(data)
        except MalformedReplyError as exc:
            assert str(exc)
    try:
        parse_conversion(data, "cid")
    except (MalformedReplyError, FinalBrokerError) as exc:
        assert str(exc)


field_values = st.none() | st.integers() | st.text(max_size=10) | st.decimals(allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(sorted(TRANSFER)),
    value=field_values,
    drop=st.booleans(),
)
def test_one_bad_transfer_field_is_one_clear_error(key: str, value: Any, drop: bool) -> None:
    data = dict(TRANSFER)
    if drop:
        del data[key]
    else:
        data[key] = value
    try:
        t = parse_transfer(data)
    except MalformedReplyError as exc:
        assert str(exc).startswith("transfer")
    else:
        assert t.amount >= 0 and t.direction in ("INCOMING", "OUTGOING")
        assert t.tx_hash is None or t.tx_hash == t.tx_hash.lower()


@settings(max_examples=300, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-10, max_value=10**9))
def test_usdc_text_round_trips_or_refuses(amount: Decimal) -> None:
    try:
        text = usdc_text(amount)
    except FinalBrokerError as exc:
        assert amount <= 0 or amount != amount.quantize(Decimal("1e-6"))
        assert str(exc)
    else:
        assert Decimal(text) == amount and amount > 0
        assert "E" not in text and len(text.partition(".")[2]) <= 6


@given(st.sampled_from(["PENDING", "APPROVED", "REJECTED"]), st.booleans())
def test_whitelist_status_of_a_single_entry(status: str, upper: bool) -> None:
    address = "0x8ba1f109551bd432803012645ac136ddd64dba72"
    entries = [WhitelistEntry("1", address, "USDC", status, "ETH")]
    asked = address.upper().replace("0X", "0x") if upper else address
    assert whitelist_status(entries, asked) == status

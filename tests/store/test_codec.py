"""The store's event codec: every event reads back equal, in the spelling old logs have."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from st0x_liquidity.domain.accumulator import Allocation, Netting
from st0x_liquidity.domain.events import (
    CircuitBreakerChanged,
    CursorCheckpointed,
    FillRecorded,
    FillReinstated,
    FillReverted,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    HedgeSubmitted,
    InputSkipped,
)
from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.domain.orders import OrderState
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.store.codec import event_from_payload, event_to_json

trade_ids = st.builds(
    TradeId,
    st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "0x" + h),
    st.integers(0, 3 * 10**9),
)
# Every spelling str(Decimal) produces: exponents, trailing zeros, negative zero.
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.sampled_from([Decimal("1E+3"), Decimal("0.00000001"), Decimal("1.500"), Decimal("-0")]),
)
positive = st.decimals(min_value=Decimal("1e-18"), max_value=Decimal("1e17"), places=18)
# Text with quotes, backslashes, control and non-ASCII characters.
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
directions = st.sampled_from(Direction)
timestamps = st.builds(
    lambda s, off: (
        datetime(2026, 1, 2, tzinfo=UTC).astimezone(timezone(timedelta(minutes=off)))
        + timedelta(microseconds=s)
    ),
    st.integers(0, 10**12),
    st.integers(-600, 600),
)
fills = st.builds(
    Fill,
    trade_ids,
    st.from_regex(r"\A[A-Z][A-Z0-9.]{0,5}\Z").map(Symbol),
    directions,
    positive,
    positive,
    st.integers(0, 10**12),
    timestamps,
)
nettings = st.lists(st.builds(Netting, trade_ids, trade_ids, decimals), max_size=3).map(tuple)
allocations = st.lists(st.builds(Allocation, trade_ids, decimals), max_size=3).map(tuple)
events = st.one_of(
    st.builds(FillRecorded, fills, nettings),
    st.builds(FillReverted, trade_ids, fills, texts, nettings),
    st.builds(FillReinstated, trade_ids, fills, nettings),
    st.builds(HedgeIntended, texts, directions, decimals, decimals, allocations),
    st.builds(HedgeSubmitted, texts, texts),
    st.builds(HedgeProgressed, texts, directions, decimals, st.none() | decimals, allocations),
    st.builds(
        HedgeClosed,
        texts,
        directions,
        st.sampled_from(OrderState),
        decimals,
        st.none() | decimals,
        st.none() | texts,
        allocations,
        allocations,
        nettings,
    ),
    st.builds(InputSkipped, texts, texts),
    st.just(CursorCheckpointed()),
    st.builds(CircuitBreakerChanged, st.booleans(), texts, texts, st.none() | texts),
)


@settings(max_examples=100, deadline=None)
@given(events)
def test_encoded_events_read_back(event: object) -> None:
    text = event_to_json(event)  # type: ignore[arg-type]
    assert event_from_payload(event.TYPE, json.loads(text)) == event  # type: ignore[attr-defined]


def test_a_fill_is_spelled_as_logs_written_by_earlier_versions() -> None:
    """Payloads are compact JSON with decimals as text: old logs replay as written."""
    stamp = datetime(2026, 1, 2, 15, 30, tzinfo=UTC)
    event = FillRecorded(
        Fill(
            TradeId(f"0x{1:064x}", 3),
            Symbol("AAPL"),
            Direction.BUY,
            Decimal("1.50"),
            Decimal("3E+2"),
            7,
            stamp,
        ),
        (Netting(TradeId(f"0x{9:064x}", 0), TradeId(f"0x{1:064x}", 3), Decimal("0.5")),),
    )
    text = event_to_json(event)
    assert text == (
        '{"fill":{"trade_id":"0x' + "0" * 63 + '1:3","symbol":"AAPL","direction":"BUY",'
        '"amount":"1.50","price":"3E+2","block_number":7,'
        '"block_timestamp":"2026-01-02T15:30:00+00:00"},"nettings":[{"older":"0x'
        + "0" * 63
        + '9:0","newer":"0x'
        + "0" * 63
        + '1:3","quantity":"0.5"}]}'
    )
    assert event_from_payload("FillRecorded", json.loads(text)) == event

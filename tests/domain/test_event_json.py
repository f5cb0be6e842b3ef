"""The hand-written event encoders write exactly what the generic cattrs + json path writes."""

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
    event_from_payload,
    event_to_json,
    event_to_payload,
)
from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.domain.orders import OrderState
from st0x_liquidity.domain.symbols import Symbol

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


@settings(max_examples=400, deadline=None)
@given(events)
def test_fast_encoding_is_the_generic_encoding(event: object) -> None:
    generic = json.dumps(event_to_payload(event), separators=(",", ":"))  # type: ignore[arg-type]
    assert event_to_json(event) == generic  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(events)
def test_encoded_events_read_back(event: object) -> None:
    text = event_to_json(event)  # type: ignore[arg-type]
    assert event_from_payload(event.TYPE, json.loads(text)) == event  # type: ignore[attr-defined]


def test_fills_of_one_block_share_the_encoded_timestamp_and_stay_exact() -> None:
    """The per-fill encoder reuses the last timestamp's text when the object repeats."""
    when = datetime(2026, 1, 2, 15, 30, tzinfo=UTC)
    other = datetime(2026, 1, 2, 15, 30, 12, tzinfo=UTC)
    made = [
        FillRecorded(
            Fill(
                TradeId(f"0x{n:064x}", n),
                Symbol("AAPL"),
                Direction.BUY,
                Decimal(amount),
                Decimal("101.50"),
                7,
                stamp,
            ),
            netted,
        )
        for n, (amount, stamp, netted) in enumerate(
            [
                ("1.50", when, ()),
                (
                    "2",
                    when,
                    (
                        Netting(
                            TradeId(f"0x{9:064x}", 0), TradeId(f"0x{1:064x}", 1), Decimal("0.5")
                        ),
                    ),
                ),
                ("3E+2", other, ()),
                ("0.1", when, ()),
            ],
            1,
        )
    ]
    for event in made + made:  # each again, in the same order: the cache is warm
        generic = json.dumps(event_to_payload(event), separators=(",", ":"))
        assert event_to_json(event) == generic

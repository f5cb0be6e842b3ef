"""Hypothesis feeds random and adversarial logs to the decoder: nothing but skips escape."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raindex_vectors import AAPL, ORDERBOOK, OWNER, USDC, after_clear_log, clear_log, take_log

from st0x_liquidity.domain.fills import Fill
from st0x_liquidity.raindex import abi
from st0x_liquidity.raindex.decode import (
    LogDecodeError,
    OrderSide,
    RawLog,
    Skip,
    TokenInfo,
    decode_event,
    owned_sides,
    side_to_fill,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOPICS = [abi.topic0(n) for n in abi.FILL_EVENTS]
VALID = [
    take_log(0, 1, (9).to_bytes(32, "big"), (100).to_bytes(32, "big")),
    clear_log(OWNER, "0x" + "ff" * 20, log_index=1),
    after_clear_log(9, 100, 100, 9, log_index=2),
]


def run_pipeline(log: RawLog, symbols: dict[str, TokenInfo]) -> None:
    try:
        event = decode_event(log, ORDERBOOK)
    except LogDecodeError:
        return
    for item in owned_sides([event], OWNER):
        if isinstance(item, Skip):
            assert item.reason and len(item.raw) <= 600
            continue
        assert isinstance(item, OrderSide)
        result = side_to_fill(item, symbols, NOW)
        assert isinstance(result, Fill | str)
        if isinstance(result, Fill):
            assert result.amount > 0 and result.price > 0


@st.composite
def mutated(draw: Any) -> RawLog:
    base = draw(st.sampled_from(VALID))
    data = bytearray(base.data)
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    data = data[:cut] if draw(st.booleans()) else data
    data += draw(st.binary(max_size=64))
    return RawLog(
        base.address,
        base.topics,
        bytes(data),
        base.block_number,
        base.block_hash,
        base.tx_hash,
        base.log_index,
    )


@st.composite
def word_soup(draw: Any) -> RawLog:
    """Data made of ABI-looking words: small offsets, huge lengths, Float extremes."""
    words = draw(
        st.lists(
            st.one_of(
                st.integers(0, 2048),
                st.sampled_from([2**256 - 1, 2**255, 2**224 - 1, 2**64, 2**32]),
                st.integers(0, 2**256 - 1),
            ),
            max_size=60,
        )
    )
    data = b"".join(w.to_bytes(32, "big") for w in words)
    return RawLog(
        ORDERBOOK, (draw(st.sampled_from(TOPICS)),), data, 1, "0x" + "00" * 32, "0x" + "01" * 32, 0
    )


SYMBOLS = st.dictionaries(
    st.sampled_from([USDC, AAPL, "0x" + "22" * 20]),
    st.builds(
        TokenInfo,
        st.sampled_from(["USDC", "tAAPL", "AAPL0x", "", "t", "ETH", "wtX"]),
        st.integers(0, 36),
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), SYMBOLS)
def test_mutated_valid_logs_never_raise(log: RawLog, symbols: dict[str, TokenInfo]) -> None:
    run_pipeline(log, symbols)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(word_soup(), SYMBOLS)
def test_word_soup_never_raises(log: RawLog, symbols: dict[str, TokenInfo]) -> None:
    run_pipeline(log, symbols)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "address",
                "topics",
                "data",
                "blockNumber",
                "blockHash",
                "transactionHash",
                "logIndex",
                "removed",
                "blockTimestamp",
            ]
        ),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=70),
            st.lists(st.text(max_size=70), max_size=3),
            st.booleans(),
        ),
    )
)
def test_rpc_objects_never_raise_unexpectedly(obj: dict[str, Any]) -> None:
    with contextlib.suppress(LogDecodeError):
        RawLog.from_rpc(obj)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VALID), max_size=6), st.permutations(list(range(6))))
def test_batches_in_any_order(logs: list[RawLog], order: list[int]) -> None:
    events = [decode_event(log, ORDERBOOK) for log in logs]
    shuffled = [events[i] for i in order if i < len(events)]
    items = owned_sides(shuffled, OWNER)
    assert all(isinstance(i, Skip | OrderSide) for i in items)


ADDRESS = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
B32 = st.binary(min_size=32, max_size=32)
ORDERS = st.tuples(
    ADDRESS,
    st.tuples(ADDRESS, ADDRESS, st.binary(max_size=80)),
    st.lists(st.tuples(ADDRESS, B32), max_size=4),
    st.lists(st.tuples(ADDRESS, B32), max_size=4),
    B32,
)
SIGNED = st.lists(st.tuples(ADDRESS, st.lists(B32, max_size=3), st.binary(max_size=70)), max_size=2)
INDEX = st.one_of(st.integers(0, 5), st.integers(0, 2**256 - 1))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(abi.FILL_EVENTS),
    ADDRESS,
    ORDERS,
    ORDERS,
    st.tuples(INDEX, INDEX, INDEX, INDEX, B32, B32),
    SIGNED,
    st.tuples(B32, B32, B32, B32),
)
def test_fast_decoder_equals_eth_abi(
    name: str, sender: str, alice: Any, bob: Any, cfg: Any, signed: Any, floats: Any
) -> None:
    """The hand-written decoder and eth-abi agree on every valid encoding."""
    from eth_abi.abi import encode

    from st0x_liquidity.raindex.decode import decode_event_reference

    if name == "TakeOrderV3":
        values = [sender, (alice, cfg[0], cfg[1], signed), floats[0], floats[1]]
    elif name == "ClearV3":
        values = [sender, alice, bob, cfg]
    else:
        values = [sender, floats]
    data = encode(list(abi.event_types(name)), values)
    log = RawLog(ORDERBOOK, (abi.topic0(name),), data, 1, "0x" + "00" * 32, "0x" + "01" * 32, 0)
    assert decode_event(log, ORDERBOOK) == decode_event_reference(log)

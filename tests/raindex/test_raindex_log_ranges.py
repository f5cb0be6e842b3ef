"""Reading logs at a size the node accepts: halve on refusal, grow back after full answers."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.raindex.log_ranges import RangeSize, get_logs
from st0x_liquidity.raindex.node import RpcError

ORDERBOOK = "0x" + "11" * 20


def capped_node(cap: int, asked: list[tuple[int, int]]) -> Any:
    """A node that refuses any range wider than ``cap`` blocks, as real ones do."""

    async def request(method: str, params: list[Any]) -> Any:
        assert method == "eth_getLogs"
        start, end = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        asked.append((start, end))
        if end - start + 1 > cap:
            raise RpcError(method, {"code": -32005, "message": "query returned more than 10000 results"})
        return []

    return request


@given(
    maximum=st.integers(1, 5000),
    cap=st.integers(1, 5000),
    start=st.integers(0, 10**9),
    width=st.integers(1, 5000),
)
def test_a_range_is_narrowed_until_the_node_answers_and_never_overshoots(
    maximum: int, cap: int, start: int, width: int
) -> None:
    size = RangeSize(maximum)
    asked: list[tuple[int, int]] = []
    end = start + min(width, maximum) - 1
    stats: Counter[str] = Counter()
    got_end, logs = asyncio.run(
        get_logs(capped_node(cap, asked), ORDERBOOK, start, end, size=size, stats=stats)
    )
    assert logs == []
    assert start <= got_end <= end  # never past what was asked for, always some progress
    assert got_end - start + 1 <= cap  # the answered range is one the node accepts
    assert all(s == start for s, _ in asked)  # narrowed from the same start
    assert 1 <= size.current <= maximum
    assert stats["get_logs"] == len(asked)
    assert stats["get_logs_refused"] == len(asked) - 1


@given(maximum=st.integers(1, 10**6), rounds=st.integers(0, 40))
def test_full_answers_grow_the_size_back_to_the_maximum_and_no_further(
    maximum: int, rounds: int
) -> None:
    size = RangeSize(maximum)
    size.halve(0, maximum - 1)
    size.halve(0, size.current - 1)
    for _ in range(rounds):
        before = size.current
        size.answered(0, size.current - 1)
        assert size.current in (before, min(maximum, before * 2))
    assert 1 <= size.current <= maximum
    if rounds >= 2 + maximum.bit_length():
        assert size.current == maximum


def test_a_short_answer_at_the_chain_head_does_not_grow_the_size() -> None:
    size = RangeSize(1000)
    size.halve(0, 999)  # 500
    size.answered(100, 109)  # ten blocks: the head, not a full range
    assert size.current == 500

"""Pyth price extraction from callTracer frames (reference vectors, §6 and §9.6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from st0x_liquidity.raindex.pyth import (
    PythCall,
    PythError,
    decode_price,
    extract_price,
    pyth_calls,
    scaled,
)

PYTH = "0x8250f4aF4B972684F7b336503E2D6dFeDeB1487a"
COIN = "0xfee33f2a978bf32dd6b662b65ba8083c6773b494f8401194ec1870c640860245"
COIN_OUTPUT = (
    "0x"
    "0000000000000000000000000000000000000000000000000000000000ebac0d"
    "000000000000000000000000000000000000000000000000000000000000520d"
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffb"
    "000000000000000000000000000000000000000000000000000000006a2a6fc1"
)
NEGATIVE_OUTPUT = (
    "0x"
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffd050f80"
    "00000000000000000000000000000000000000000000000000000000000003e8"
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa"
    "000000000000000000000000000000000000000000000000000000006553f100"
)


def frame(
    to: str, data: str, output: str | None, calls: list[Any] | None = None, **kw: Any
) -> dict[str, Any]:
    f: dict[str, Any] = {
        "type": "STATICCALL",
        "from": "0x" + "11" * 20,
        "to": to,
        "input": data,
        **kw,
    }
    if output is not None:
        f["output"] = output
    if calls:
        f["calls"] = calls
    return f


@pytest.mark.parametrize(
    ("value", "expo", "expected"),
    [
        (123456789, -8, "1.23456789"),
        (42, 0, "42"),
        (123, 3, "123000"),
        (100000000, -6, "100"),
        (1500000, -6, "1.5"),
        (500, -2, "5"),
        (42000, -3, "42"),
        (1, 5, "100000"),
        (-50000000, -6, "-50"),
        (18250, -2, "182.5"),
        (999999999, -8, "9.99999999"),
    ],
)
def test_scaling_vectors(value: int, expo: int, expected: str) -> None:
    assert scaled(value, expo) == Decimal(expected)


def test_real_coin_trace_getpriceunsafe() -> None:
    trace = frame(
        "0x" + "99" * 20,
        "0xdeadbeef",
        "0x",
        calls=[
            frame(PYTH.lower(), "0x96834ad3" + COIN[2:], COIN_OUTPUT),
            frame(
                "0x" + "77" * 20, "0x96834ad3" + COIN[2:], COIN_OUTPUT
            ),  # implementation delegatecall
        ],
    )
    price = extract_price(trace, PYTH, "COIN", {"COIN": COIN})
    assert (price.price, price.confidence, price.expo) == (
        Decimal("154.45005"),
        Decimal("0.21005"),
        -5,
    )
    assert price.publish_time.isoformat() == "2026-06-11T08:20:17+00:00"
    assert price.function == "getPriceUnsafe"
    assert len(pyth_calls(trace, PYTH)) == 1


def test_negative_price_and_no_older_than() -> None:
    data = "0xa4ae35e0" + COIN[2:] + "00" * 31 + "3c"
    price = extract_price(frame(PYTH, data, NEGATIVE_OUTPUT), PYTH, None, {})
    assert price.price == Decimal(-50) and price.function == "getPriceNoOlderThan"


def test_failures() -> None:
    with pytest.raises(PythError, match="no Pyth call"):
        extract_price(frame("0x" + "12" * 20, "0x", "0x"), PYTH, "AAPL", {})
    errored = frame(PYTH, "0x96834ad3" + COIN[2:], "0x19abf40e", error="execution reverted")
    with pytest.raises(PythError, match="no Pyth call"):
        extract_price(errored, PYTH, "COIN", {})
    with pytest.raises(PythError, match="no Pyth price of feed"):
        extract_price(
            frame(PYTH, "0x96834ad3" + COIN[2:], COIN_OUTPUT),
            PYTH,
            "AAPL",
            {"AAPL": "0x" + "ab" * 32},
        )
    two = frame(
        "0x" + "99" * 20,
        "0x",
        "0x",
        calls=[
            frame(PYTH, "0x96834ad3" + COIN[2:], COIN_OUTPUT),
            frame(PYTH, "0x96834ad3" + "ab" * 32, COIN_OUTPUT),
        ],
    )
    with pytest.raises(PythError, match="2 Pyth feeds"):
        extract_price(two, PYTH, "XYZ", {})
    with pytest.raises(PythError, match="expected 128"):
        decode_price(PythCall(COIN, "getPriceUnsafe", b"\x00" * 64))
    bad_time = bytes.fromhex(COIN_OUTPUT[2:])[:96] + b"\xff" * 32
    with pytest.raises(PythError, match="not a valid timestamp"):
        decode_price(PythCall(COIN, "getPriceUnsafe", bad_time))


def test_garbage_traces_never_raise_unexpectedly() -> None:
    for trace in (
        None,
        [],
        "x",
        {"calls": "nope"},
        {"to": PYTH, "input": 5},
        {"calls": [None, 1, {}]},
    ):
        with pytest.raises(PythError):
            extract_price(trace, PYTH, "AAPL", {})

"""Pyth prices from a ``debug_traceTransaction`` callTracer frame tree (pure).

A frame counts when it calls the configured Pyth address (the proxy, compared
case-insensitively) with one of the four IPyth read selectors, carries output,
and did not fail. The price of the fill's symbol is taken from the first call of
that symbol's configured feed; with no configured feed, only a trace that reads
exactly one feed is trusted (the seed system took "the first call" and could
stick to another asset's feed).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
from eth_abi.abi import decode as abi_decode

from . import abi

SELECTORS = {
    abi.function_selector("IPyth", name): name
    for name in (
        "getPriceUnsafe",
        "getPriceNoOlderThan",
        "getEmaPriceUnsafe",
        "getEmaPriceNoOlderThan",
    )
}


class PythError(ValueError):
    """No usable Pyth price in a trace."""


@attrs.frozen
class PythCall:
    feed_id: str
    function: str
    output: bytes


@attrs.frozen
class PythPrice:
    feed_id: str
    function: str
    price: Decimal
    confidence: Decimal
    expo: int
    publish_time: datetime
    raw_price: int
    raw_conf: int

    def to_json(self) -> dict[str, Any]:
        return {
            "feed_id": self.feed_id,
            "function": self.function,
            "price": str(self.price),
            "confidence": str(self.confidence),
            "expo": self.expo,
            "publish_time": self.publish_time.isoformat(),
            "raw_price": self.raw_price,
            "raw_conf": self.raw_conf,
        }


def _bytes(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) % 2:
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def _frames(frame: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """Depth-first, pre-order (a frame before its children, children in order)."""
    if not isinstance(frame, Mapping) or depth > 1024:
        return
    yield frame
    children = frame.get("calls")
    if isinstance(children, list):
        for child in children:
            yield from _frames(child, depth + 1)


def pyth_calls(trace: Any, pyth_address: str) -> list[PythCall]:
    target = pyth_address.lower()
    calls: list[PythCall] = []
    for frame in _frames(trace):
        to = frame.get("to")
        if not isinstance(to, str) or to.lower() != target or frame.get("error"):
            continue
        data = _bytes(frame.get("input"))
        output = _bytes(frame.get("output"))
        if data is None or output is None or len(data) < 36:
            continue
        function = SELECTORS.get(data[:4])
        if function is None:
            continue
        calls.append(PythCall("0x" + data[4:36].hex(), function, output))
    return calls


def scaled(value: int, expo: int) -> Decimal:
    """``value × 10^expo`` exactly."""
    return Decimal(f"{value}E{expo}")


def decode_price(call: PythCall) -> PythPrice:
    if len(call.output) != 128:
        raise PythError(f"Pyth {call.function} returned {len(call.output)} bytes, expected 128")
    try:
        price, conf, expo, publish = abi_decode(
            ["int64", "uint64", "int32", "uint256"], call.output
        )
    except Exception as exc:
        raise PythError(f"Pyth {call.function} output does not decode: {exc}") from None
    try:
        published = datetime.fromtimestamp(publish, UTC)
    except (OverflowError, OSError, ValueError):
        raise PythError(f"Pyth publish time {publish} is not a valid timestamp") from None
    return PythPrice(
        feed_id=call.feed_id,
        function=call.function,
        price=scaled(price, expo),
        confidence=scaled(conf, expo),
        expo=expo,
        publish_time=published,
        raw_price=price,
        raw_conf=conf,
    )


def extract_price(
    trace: Any, pyth_address: str, symbol: str | None, feeds: Mapping[str, str]
) -> PythPrice:
    """The Pyth price the transaction read for ``symbol`` (base ticker), or PythError."""
    calls = pyth_calls(trace, pyth_address)
    if not calls:
        raise PythError("no Pyth call in the trace")
    feed = feeds.get(symbol) if symbol else None
    if feed is not None:
        for call in calls:
            if call.feed_id == feed.lower():
                return decode_price(call)
        raise PythError(f"the trace reads no Pyth price of feed {feed} ({symbol})")
    distinct = {call.feed_id for call in calls}
    if len(distinct) > 1:
        raise PythError(
            f"the trace reads {len(distinct)} Pyth feeds and none is configured for {symbol}"
        )
    return decode_price(calls[0])

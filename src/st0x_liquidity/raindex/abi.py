"""The IOrderBookV5 / IPyth / ERC-20 ABI, kept as data in ``data/raindex_abi.json``.

Canonical type strings and topic hashes are derived from that data, never typed
twice; ``tests/raindex/test_raindex_abi.py`` checks them against the published
topic hashes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from eth_utils.crypto import keccak


@cache
def abi_data() -> dict[str, Any]:
    text = resources.files("st0x_liquidity").joinpath("data/raindex_abi.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def canonical_type(param: Mapping[str, Any]) -> str:
    """``tuple`` components expanded, array suffixes kept: ``(address,bytes32)[]``."""
    typ: str = param["type"]
    if typ.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){typ[len('tuple') :]}"
    return typ


def _entry(interface: str, kind: str, name: str) -> Mapping[str, Any]:
    for entry in abi_data()[interface]:
        if entry["type"] == kind and entry["name"] == name:
            result: Mapping[str, Any] = entry
            return result
    raise KeyError(f"{interface} has no {kind} {name}")


@cache
def event_types(name: str) -> tuple[str, ...]:
    """The eth-abi type list of an IOrderBookV5 event's (all non-indexed) parameters."""
    entry = _entry("IOrderBookV5", "event", name)
    return tuple(canonical_type(p) for p in entry["inputs"])


def signature(name: str, types: Sequence[str]) -> str:
    return f"{name}({','.join(types)})"


@cache
def event_signature(name: str) -> str:
    return signature(name, event_types(name))


@cache
def topic0(name: str) -> bytes:
    return keccak(text=event_signature(name))


@cache
def function_selector(interface: str, name: str) -> bytes:
    entry = _entry(interface, "function", name)
    return keccak(text=signature(name, [canonical_type(p) for p in entry["inputs"]]))[:4]


@cache
def function_output_types(interface: str, name: str) -> tuple[str, ...]:
    entry = _entry(interface, "function", name)
    return tuple(canonical_type(p) for p in entry["outputs"])


TAKE_ORDER_V3 = "TakeOrderV3"
CLEAR_V3 = "ClearV3"
AFTER_CLEAR_V2 = "AfterClearV2"
FILL_EVENTS = (TAKE_ORDER_V3, CLEAR_V3, AFTER_CLEAR_V2)
"""The events the source asks ``eth_getLogs`` for (one OR-ed topic0 filter)."""

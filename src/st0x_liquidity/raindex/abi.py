"""The IOrderBookV5 / IRaindexV6 / IPyth / ERC-20 ABI, kept as data in ``data/raindex_abi.json``.

Canonical type strings, topic hashes, selectors and the error table are derived
from that data, never typed twice; ``tests/raindex/test_raindex_abi.py`` checks
them against the published values. V6 declares the V5 events unchanged, so the
events are listed once (under ``IOrderBookV5``); ``IRaindexV6`` holds what differs
(``deposit4``/``withdraw4`` and its errors). This is runtime data: the devnet's
test-contract artifacts are never read outside the devnet and fakes.
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
def function_input_types(interface: str, name: str) -> tuple[str, ...]:
    entry = _entry(interface, "function", name)
    return tuple(canonical_type(p) for p in entry["inputs"])


@cache
def function_output_types(interface: str, name: str) -> tuple[str, ...]:
    entry = _entry(interface, "function", name)
    return tuple(canonical_type(p) for p in entry["outputs"])


TAKE_ORDER_V3 = "TakeOrderV3"
CLEAR_V3 = "ClearV3"
AFTER_CLEAR_V2 = "AfterClearV2"
FILL_EVENTS = (TAKE_ORDER_V3, CLEAR_V3, AFTER_CLEAR_V2)
"""The events the source asks ``eth_getLogs`` for (one OR-ed topic0 filter)."""

ORDERBOOK_INTERFACES = {"v5": "IOrderBookV5", "v6": "IRaindexV6"}
"""``[evm] orderbook_interface`` value -> the interface's name in the ABI data."""
VAULT_FUNCTIONS = {"v5": ("deposit3", "withdraw3"), "v6": ("deposit4", "withdraw4")}
"""(deposit, withdraw) function of each orderbook interface."""
ERROR_SOURCES = ("IOrderBookV5", "IRaindexV6", "OrderBook")
"""Where the orderbook's custom errors are declared: both interfaces and the implementation."""


@cache
def orderbook_errors() -> dict[bytes, tuple[str, tuple[str, ...]]]:
    """selector -> (name, argument types) of every custom error the orderbook can revert
    with, V5 and V6 (a name declared by both has the same arguments, so one entry)."""
    found: dict[bytes, tuple[str, tuple[str, ...]]] = {}
    for interface in ERROR_SOURCES:
        for entry in abi_data()[interface]:
            if entry["type"] == "error":
                types = tuple(canonical_type(p) for p in entry["inputs"])
                found[keccak(text=signature(entry["name"], types))[:4]] = (entry["name"], types)
    return found

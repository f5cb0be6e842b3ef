"""The committed devnet artifacts are what solc-js builds from tools/contracts, and the test
orderbook's events are exactly the packaged IOrderBookV5 ABI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.contracts import build_contracts

from st0x_liquidity.raindex import abi
from st0x_liquidity.raindex.devnet import artifacts


def test_test_orderbook_emits_the_canonical_events() -> None:
    compiled = {
        e["name"]: abi.signature(e["name"], [abi.canonical_type(p) for p in e["inputs"]])
        for e in artifacts()["TestOrderBook"]["abi"]
        if e["type"] == "event"
    }
    for entry in abi.abi_data()["IOrderBookV5"]:
        if entry["type"] == "event":
            assert compiled[entry["name"]] == abi.event_signature(entry["name"])
            assert all(not p.get("indexed") for p in entry["inputs"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_artifacts_rebuild_identically(tmp_path: Path) -> None:
    out = tmp_path / "contracts.json"
    build_contracts(str(out))
    assert json.loads(out.read_text()) == artifacts()

"""The committed devnet artifacts are what solc-js builds from tools/contracts, and the test
orderbooks' events and vault functions are exactly the packaged IOrderBookV5 / IRaindexV6 ABI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from st0x_testing.raindex_devnet import ORDERBOOK_CONTRACTS, artifacts
from support.contracts import build_contracts

from st0x_liquidity.raindex import abi


@pytest.mark.parametrize("interface", ["v5", "v6"])
def test_test_orderbook_emits_the_canonical_events(interface: str) -> None:
    contract = ORDERBOOK_CONTRACTS[interface]
    compiled = {
        e["name"]: abi.signature(e["name"], [abi.canonical_type(p) for p in e["inputs"]])
        for e in artifacts()[contract]["abi"]
        if e["type"] in ("event", "function")
    }
    for entry in abi.abi_data()["IOrderBookV5"]:
        if entry["type"] == "event":
            assert compiled[entry["name"]] == abi.event_signature(entry["name"])
            assert all(not p.get("indexed") for p in entry["inputs"])
    # its vault functions are the real interface's (the runtime builds calls from those)
    source = abi.ORDERBOOK_INTERFACES[interface]
    for name in (*abi.VAULT_FUNCTIONS[interface], "vaultBalance2"):
        assert compiled[name] == abi.signature(name, abi.function_input_types(source, name))
    other = abi.VAULT_FUNCTIONS["v6" if interface == "v5" else "v5"]
    assert not set(other) & set(compiled)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_artifacts_rebuild_identically(tmp_path: Path) -> None:
    out = tmp_path / "contracts.json"
    build_contracts(str(out))
    assert json.loads(out.read_text()) == artifacts()

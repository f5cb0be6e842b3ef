"""The committed devnet artifacts are what solc-js builds from tools/contracts, and the test
orderbook's events are exactly the packaged IOrderBookV5 ABI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from st0x_liquidity.raindex import abi
from st0x_liquidity.raindex.devnet import artifacts

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("ST0X_TOOLS", ROOT / "tools"))


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
    node = shutil.which("node")
    assert node, "node is needed (the project's tools are npm packages)"
    assert (TOOLS / "node_modules" / "solc").exists(), (
        "run scripts/install-peers.sh (npm install in tools/)"
    )
    out = tmp_path / "contracts.json"
    done = subprocess.run(
        [node, str(ROOT / "tools" / "build-contracts.js"), str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env={**os.environ, "NODE_PATH": str(TOOLS / "node_modules")},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == artifacts()

"""The committed CCTP artifact is what solc-js builds from tools/contracts/cctp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from st0x_liquidity.cctp.devnet import cctp_artifacts

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("ST0X_TOOLS", ROOT / "tools"))


def test_artifact_has_the_stand_ins() -> None:
    built = cctp_artifacts()
    assert built["_compiler"].startswith("0.8.28")
    for name in ("TestUSDC", "MessageTransmitterV2", "TokenMinterV2", "TokenMessengerV2"):
        assert built[name]["bytecode"].startswith("0x") and len(built[name]["bytecode"]) > 100
        assert built[name]["source"] == f"{name}.sol"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cctp_artifact_rebuilds_identically(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is needed (the project's tools are npm packages)"
    assert (TOOLS / "node_modules" / "solc").exists(), "run npm install in tools/"
    out = tmp_path / "cctp.json"
    done = subprocess.run(
        [node, str(ROOT / "tools" / "build-contracts.js"), "-", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env={**os.environ, "NODE_PATH": str(TOOLS / "node_modules")},
    )
    assert done.returncode == 0, done.stderr
    assert (
        out.read_bytes()
        == (ROOT / "src/st0x_liquidity/data/cctp_devnet_contracts.json").read_bytes()
    )
    assert json.loads(out.read_text()) == cctp_artifacts()

"""The committed CCTP artifact is what solc-js builds from tools/contracts/cctp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from st0x_testing.cctp_devnet import cctp_artifacts
from support.contracts import ROOT, build_contracts


def test_artifact_has_the_stand_ins() -> None:
    built = cctp_artifacts()
    assert built["_compiler"].startswith("0.8.28")
    for name in ("TestUSDC", "MessageTransmitterV2", "TokenMinterV2", "TokenMessengerV2"):
        assert built[name]["bytecode"].startswith("0x") and len(built[name]["bytecode"]) > 100
        assert built[name]["source"] == f"{name}.sol"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cctp_artifact_rebuilds_identically(tmp_path: Path) -> None:
    out = tmp_path / "cctp.json"
    build_contracts("-", str(out))
    assert (
        out.read_bytes()
        == (ROOT / "plugins/st0x_testing/src/st0x_testing/data/cctp_devnet_contracts.json").read_bytes()
    )
    assert json.loads(out.read_text()) == cctp_artifacts()

"""Rebuild the devnet contracts with ``tools/build-contracts.js`` (solc-js from npm), to
check that a committed artifact is what its Solidity compiles to."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("ST0X_TOOLS", ROOT / "tools"))


def build_contracts(*args: str) -> None:
    """Run ``node tools/build-contracts.js ARGS`` with the tools' node_modules; it must
    succeed (node and solc must be installed: the project's tools are npm packages)."""
    node = shutil.which("node")
    assert node, "node is needed (the project's tools are npm packages)"
    assert (TOOLS / "node_modules" / "solc").exists(), (
        "run scripts/install-peers.sh (npm install in tools/)"
    )
    done = subprocess.run(
        [node, str(ROOT / "tools" / "build-contracts.js"), *args],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env={**os.environ, "NODE_PATH": str(TOOLS / "node_modules")},
    )
    assert done.returncode == 0, done.stderr

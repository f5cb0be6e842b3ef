"""`python -m st0x_liquidity inventory` against a real database file, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from test_rebalancing_inventory import _seed


def test_inventory_command_table_and_json(tmp_path: Path) -> None:
    asyncio.run(_seed(tmp_path / "st0x.db"))
    (tmp_path / "fills.jsonl").write_text("")
    config = tmp_path / "config.toml"
    config.write_text(
        'database_url = "st0x.db"\n'
        '[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        '[broker]\ntype = "dry-run"\n'
        "[rebalancing]\ndry_run = true\n"
        '[rebalancing.equity]\ntarget = "0.5"\ndeviation = "0.1"\n'
    )
    cmd = [sys.executable, "-m", "st0x_liquidity", "inventory", "--config-file", str(config)]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=60, check=True)
    data = json.loads(out.stdout)
    rows = {r["asset"]: r for r in data["assets"]}
    assert rows["AAPL"]["onchain"]["available"] == "6"
    assert rows["AAPL"]["offchain"]["available"] == "-6"
    assert rows["AAPL"]["band"] == {"lower": "0.4", "target": "0.5", "upper": "0.6"}
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    assert table.splitlines()[0].startswith("ASSET")
    assert any(line.startswith("AAPL") for line in table.splitlines())

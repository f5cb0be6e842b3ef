"""`python -m st0x_liquidity inventory` (and `rebalance status`) against a real database,
a SQLite file or a PostgreSQL database, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_rebalancing_inventory import _seed


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return "st0x.db"


def test_inventory_command_table_and_json(tmp_path: Path, database_url: str) -> None:
    where = database_url if database_url.startswith("postgresql") else tmp_path / database_url
    asyncio.run(_seed(where))
    (tmp_path / "fills.jsonl").write_text("")
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "{database_url}"\n'
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
    status = [sys.executable, "-m", "st0x_liquidity", "rebalance", "--config-file", str(config)]
    out = subprocess.run(
        [*status, "status"], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "no rebalancing operations yet"

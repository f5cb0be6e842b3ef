"""End to end through the real CLI: `run` with the raindex source and the dry-run executor
against anvil, a restart that doubles nothing, and `get-pyth-price`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from st0x_testing import raindex_devnet as dn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[tuple[dn.Anvil, dn.Chain, dn.Devnet, Path]]:
    anvil = dn.start_anvil()
    chain = await dn.Chain.connect(anvil.ws_url)
    devnet = await dn.deploy(chain)
    config = tmp_path / "config.toml"
    config.write_text(dn.config_toml(devnet, anvil.ws_url, "e2e.sqlite"))
    yield anvil, chain, devnet, config
    await chain.close()
    anvil.stop()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def audit(config: Path) -> dict[str, Any]:
    done = cli("audit", "--json", "--config-file", str(config))
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def run_until(config: Path, fills: int, wait_seconds: float = 60) -> str:
    process = subprocess.Popen(
        [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + wait_seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if (config.parent / "e2e.sqlite").exists():
                data = audit(config)
                hedged = [
                    f
                    for f in data["fills"]
                    if f["hedged"] and all(h["state"] == "filled" for h in f["hedged"])
                ]
                if len(data["fills"]) >= fills and len(hedged) >= fills:
                    break
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out


async def test_run_restart_and_get_pyth_price(
    net: tuple[dn.Anvil, dn.Chain, dn.Devnet, Path],
) -> None:
    _anvil, chain, devnet, config = net
    first = [
        await dn.take(chain, devnet, "AAPL", True, Decimal("1.5")),
        await dn.take(chain, devnet, "TSLA", False, Decimal("0.25")),
        await dn.clear(chain, devnet, "NVDA", True, Decimal(2)),
    ]
    out = await asyncio.to_thread(run_until, config, 3)
    assert "fill   BUY 1.5 AAPL" in out and "hedge  SELL 1.5 AAPL" in out
    data = audit(config)
    assert sorted(f["tx_hash"] for f in data["fills"]) == sorted(
        r["transactionHash"] for r in first
    )

    later = [await dn.take(chain, devnet, "AAPL", False, Decimal("1.5"))]
    await asyncio.to_thread(run_until, config, 4)
    data = audit(config)
    assert len(data["fills"]) == 4  # the restart re-read a few blocks; nothing doubled
    positions = json.loads(cli("positions", "--json", "--config-file", str(config)).stdout)
    assert {p["symbol"]: p["net"] for p in positions["positions"]} == {
        "AAPL": "0",
        "NVDA": "0",
        "TSLA": "0",
    }

    done = cli(
        "get-pyth-price",
        later[0]["transactionHash"],
        "--symbol",
        "AAPL",
        "--config-file",
        str(config),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["price"]["price"] == "190.25000000"
    assert result["price"]["feed_id"] == "0x" + dn.feed_id("AAPL").hex()

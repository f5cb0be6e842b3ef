"""Reconciliation over HTTP: the real CLI compares Alpaca's positions with the books.

The fake already holds AAPL the books know nothing of (shares bought by hand,
say): the first reconciliation finds the difference, halts AAPL
(``halt_on_mismatch``), the fill's hedge is not placed, and ``audit --json``
shows the mismatch.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from st0x_testing.alpaca_e2e import fill_line, finish, start_cli
from st0x_testing.fake_alpaca import FakeAlpacaTrading

from .conftest import KEY, SECRET  # type: ignore[import-not-found]


def write_config(tmp: Path, base_url: str) -> Path:
    (tmp / "fills.jsonl").write_text(fill_line(1, "tAAPL", "SELL", "2", "187.5") + "\n")
    config = tmp / "config.toml"
    config.write_text(
        f"""
database_url = "st0x.db"
log_level = "info"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "alpaca-trading-api"
base_url = "{base_url}"
backoff_initial = 0.05
backoff_max = 0.2
[hedging]
poll_interval = 0.05
clock_recheck = 0.5
[engine]
drain_timeout = 20.0
[reconciliation]
halt_on_mismatch = true
"""
    )
    return config


@pytest.mark.slow
async def test_a_position_the_books_do_not_know_halts_the_symbol(tmp_path: Path) -> None:
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET) as fake:
        fake.prices["AAPL"] = Decimal("187.5")
        fake.positions["AAPL"] = Decimal("5")  # bought outside the bot
        config = write_config(tmp_path, fake.base_url)
        proc = await start_cli(
            tmp_path, config, ST0X_BROKER_API_KEY=KEY, ST0X_BROKER_API_SECRET=SECRET
        )
        log = await finish(proc)
        posted = [b.get("client_order_id") for b in fake.order_bodies]
    assert "reconciliation mismatch: AAPL broker holds 5, the books say 0" in log
    assert posted == [], "a hedge went out for a halted symbol"
    audit = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "st0x_liquidity", "audit", "--json", "--config-file", str(config),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "ST0X_BROKER_API_KEY": KEY, "ST0X_BROKER_API_SECRET": SECRET},
    )
    out, _ = await asyncio.wait_for(audit.communicate(), 60)
    assert audit.returncode == 0
    recon = json.loads(out)["reconciliation"]
    assert recon["status"] == "mismatch"
    assert recon["symbols"] == [
        {"symbol": "AAPL", "broker": "5", "books": "0", "difference": "5", "mismatch": True}
    ]

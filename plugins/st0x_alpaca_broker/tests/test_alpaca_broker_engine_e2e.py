"""The engine through the real CLI with the Broker API plugin: replay → engine → fake."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from st0x_alpaca_broker.fake import ACCOUNT_ID, FakeAlpacaBroker

from .conftest import BROKER_KEY, BROKER_SECRET  # type: ignore[import-not-found]


def fill_line(n: int, symbol: str, direction: str, amount: str, price: str) -> str:
    return json.dumps(
        {
            "tx_hash": f"0x{n:064x}",
            "log_index": 0,
            "symbol": symbol,
            "direction": direction,
            "amount": amount,
            "price": price,
            "block_number": 2000 + n,
            "block_timestamp": 1767368000 + n,
        }
    )


@pytest.mark.slow
async def test_engine_hedges_through_the_broker_api(tmp_path: Path) -> None:
    rows = [
        fill_line(1, "tAAPL", "BUY", "1.25", "187.53"),
        fill_line(2, "tTSLA", "SELL", "0.75", "241.43"),
        fill_line(3, "tAAPL", "SELL", "0.5", "187.6"),
        fill_line(4, "tNVDA", "BUY", "0.01", "121.59"),  # $1.22: below the $2 threshold
    ]
    (tmp_path / "fills.jsonl").write_text("\n".join(rows) + "\n")
    async with FakeAlpacaBroker(key=BROKER_KEY, secret=BROKER_SECRET) as fake:
        fake.inject("503", path_contains="/orders/", times=1)
        fake.inject("slow_after", method="POST", delay=2.0)
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
database_url = "st0x.db"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "alpaca-broker-api"
base_url = "{fake.base_url}"
timeout = 0.5
backoff_initial = 0.05
[hedging]
poll_interval = 0.05
poll_jitter = 0.01
retry_backoff_max = 0.5
clock_recheck = 0.5
"""
        )
        env = dict(
            os.environ,
            ST0X_BROKER_API_KEY=BROKER_KEY,
            ST0X_BROKER_API_SECRET=BROKER_SECRET,
            ST0X_BROKER_ACCOUNT_ID=ACCOUNT_ID,
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "st0x_liquidity", "run", "--config-file", str(config),
            cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 120)
        text = err.decode(errors="replace")
        assert proc.returncode == 0, text[-4000:]
        assert BROKER_SECRET not in text and "Traceback" not in text

    db = sqlite3.connect(tmp_path / "st0x.db")
    hedges = db.execute(
        "SELECT client_order_id, symbol, side, state, broker_order_id, filled_quantity "
        "FROM hedge_orders ORDER BY symbol"
    ).fetchall()
    db.close()
    assert hedges and all(h[3] == "filled" for h in hedges)
    assert "NVDA" not in {h[1] for h in hedges}
    for cid, _symbol, _side, _state, broker_id, filled in hedges:
        order = fake.order_by_client_id(cid)
        assert order is not None and order.id == broker_id and order.filled_qty == Decimal(filled)
    assert len(fake.orders) == len(hedges) == len({h[0] for h in hedges})
    assert fake.positions == {"AAPL": Decimal("-0.75"), "TSLA": Decimal("0.75")}

"""The engine through the real CLI with the Broker API plugin: replay → engine → fake.

One scenario SIGKILLs the process after the order POST reached the fake but
before its answer came back; after a restart exactly one order exists.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from st0x_testing import alpaca_e2e as e2e
from st0x_testing.alpaca_e2e import fill_line, finish, hedge_rows, wait_for_one_order
from st0x_testing.fake_alpaca import FILL_AT_ONCE
from st0x_testing.fake_alpaca_broker import ACCOUNT_ID, FakeAlpacaBroker

from .conftest import BROKER_KEY, BROKER_SECRET  # type: ignore[import-not-found]


@pytest.mark.slow
async def test_engine_hedges_through_the_broker_api(tmp_path: Path) -> None:
    rows = [
        fill_line(1, "tAAPL", "BUY", "1.25", "187.53", first_block=2000),
        fill_line(2, "tTSLA", "SELL", "0.75", "241.43", first_block=2000),
        fill_line(3, "tAAPL", "SELL", "0.5", "187.6", first_block=2000),
        # $1.22: below the $2 threshold
        fill_line(4, "tNVDA", "BUY", "0.01", "121.59", first_block=2000),
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
        text = await finish(await start_cli(tmp_path, config))
        assert BROKER_SECRET not in text

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


def write_config(tmp: Path, base_url: str, *, timeout: float) -> Path:
    config = tmp / "config.toml"
    config.write_text(
        f"""
database_url = "st0x.db"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "alpaca-broker-api"
base_url = "{base_url}"
timeout = {timeout}
backoff_initial = 0.05
backoff_max = 0.2
[hedging]
poll_interval = 0.05
poll_jitter = 0.01
retry_backoff_max = 0.5
clock_recheck = 0.5
[engine]
shutdown_timeout = 2.0
drain_timeout = 60.0
"""
    )
    return config


async def start_cli(tmp: Path, config: Path) -> asyncio.subprocess.Process:
    return await e2e.start_cli(
        tmp,
        config,
        ST0X_BROKER_API_KEY=BROKER_KEY,
        ST0X_BROKER_API_SECRET=BROKER_SECRET,
        ST0X_BROKER_ACCOUNT_ID=ACCOUNT_ID,
    )


@pytest.mark.slow
async def test_sigkill_between_order_post_and_answer_leaves_one_order(tmp_path: Path) -> None:
    (tmp_path / "fills.jsonl").write_text(
        fill_line(1, "tTSLA", "SELL", "0.375", "241.43", first_block=2000) + "\n"
    )
    async with FakeAlpacaBroker(key=BROKER_KEY, secret=BROKER_SECRET) as fake:
        fake.default_script = FILL_AT_ONCE
        # The order is created at the fake, then its answer is held until the process dies.
        fake.inject("slow_after", method="POST", delay=60.0)
        config = write_config(tmp_path, fake.base_url, timeout=30.0)
        proc = await start_cli(tmp_path, config)
        await wait_for_one_order(proc, fake)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert hedge_rows(tmp_path)[0][2] == "pending"  # the intent was durable, no answer

        fake.faults.clear()
        text = await finish(await start_cli(tmp_path, config))
        assert BROKER_SECRET not in text

    assert len(fake.orders) == 1
    assert fake.order_posts == 1, "recovery must look the order up, not post it again"
    ((cid, symbol, state, broker_id, filled),) = hedge_rows(tmp_path)
    order = fake.order_by_client_id(cid)
    assert order is not None and order.id == broker_id
    assert (symbol, state, Decimal(filled)) == ("TSLA", "filled", Decimal("0.375"))
    assert order.side == "buy" and fake.positions["TSLA"] == Decimal("0.375")

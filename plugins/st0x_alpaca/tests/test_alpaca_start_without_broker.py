"""``run`` starts while Alpaca is unreachable, rate limiting or refusing the login.

The real CLI in a child process against the fake over HTTP: fills are
recorded from the first moment, ``/health`` and ``/metrics`` name what is
wrong with the broker, and the hedges go out once it answers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from st0x_testing import alpaca_e2e as e2e
from st0x_testing.alpaca_e2e import fill_line
from st0x_testing.fake_alpaca import FakeAlpacaTrading

from .conftest import KEY, SECRET  # type: ignore[import-not-found]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, broker_port: int, dashboard_port: int) -> Path:
    lines = [fill_line(n, "tAAPL", "SELL", "0.6", "187.5") for n in range(1, 6)]
    (tmp / "fills.jsonl").write_text("\n".join(lines) + "\n")
    config = tmp / "config.toml"
    config.write_text(
        f"""
database_url = "st0x.db"
log_level = "info"
[source]
type = "replay"
path = "fills.jsonl"
follow = true
[broker]
type = "alpaca-trading-api"
base_url = "http://127.0.0.1:{broker_port}"
timeout = 2.0
connect_timeout = 0.5
backoff_initial = 0.05
backoff_max = 0.2
[hedging]
poll_interval = 0.05
retry_backoff_max = 0.5
clock_recheck = 0.5
[engine]
shutdown_timeout = 2.0
[dashboard]
host = "127.0.0.1"
port = {dashboard_port}
status_interval = 0.2
"""
    )
    return config


def recorded(tmp: Path) -> tuple[int, int]:
    """(fills recorded, hedges filled) in the bot's database."""
    try:
        db = sqlite3.connect(f"file:{tmp / 'st0x.db'}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0, 0
    try:
        fills = db.execute("SELECT COUNT(*) FROM onchain_trades").fetchone()[0]
        hedges = db.execute(
            "SELECT COUNT(*) FROM hedge_orders WHERE state = 'filled'"
        ).fetchone()[0]
        return int(fills), int(hedges)
    except sqlite3.Error:
        return 0, 0
    finally:
        db.close()


async def until(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def health(http: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, Any]]:
    try:
        async with http.get(f"http://127.0.0.1:{port}/health") as resp:
            return resp.status, json.loads(await resp.text())
    except aiohttp.ClientError:
        return 0, {}


async def metric(http: aiohttp.ClientSession, port: int, name: str) -> str:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["unreachable", "rate_limited", "login_refused"])
async def test_the_bot_starts_records_fills_and_hedges_once_the_broker_answers(
    tmp_path: Path, outage: str
) -> None:
    broker_port, dashboard_port = free_port(), free_port()
    config = write_config(tmp_path, broker_port, dashboard_port)
    fake = FakeAlpacaTrading(key_id=KEY, secret_key=SECRET)
    fake.prices["AAPL"] = Decimal("187.5")
    if outage == "rate_limited":
        fake.inject("429", path_contains="/v2/account", times=1000, retry_after="0.3")
    if outage == "login_refused":
        fake.key_id = "PKSOMEONEELSE"
    if outage != "unreachable":
        await fake.start(broker_port)
    proc = await e2e.start_cli(
        tmp_path, config, ST0X_BROKER_API_KEY=KEY, ST0X_BROKER_API_SECRET=SECRET
    )
    try:
        async with aiohttp.ClientSession() as http:
            # Fills are recorded while the broker is down; nothing is hedged.
            await until(lambda: _true(recorded(tmp_path)[0] == 5))
            status, body = await until(lambda: _not_ready_broker(http, dashboard_port))
            assert status == 503
            detail = body["checks"]["broker"]["detail"]
            expected = {
                "unreachable": "broker not answering",
                "rate_limited": "broker not answering",
                "login_refused": "",
            }[outage]
            assert expected in detail, detail
            if outage == "login_refused":
                auth = await metric(http, dashboard_port, "st0x_broker_auth_required")
                assert auth.endswith(" 1.0"), auth
            up = await metric(http, dashboard_port, "st0x_broker_up")
            assert up.endswith(" 0.0"), up
            assert recorded(tmp_path)[1] == 0
            assert proc.returncode is None, "the bot stopped"
            # The broker answers: the hedge goes out, health turns ready.
            if outage == "unreachable":
                await fake.start(broker_port)
            elif outage == "rate_limited":
                fake.faults.clear()
            else:
                fake.key_id = KEY
            await until(lambda: _true(recorded(tmp_path)[1] >= 1))
            status, body = await until(lambda: _ready(http, dashboard_port))
            assert body["checks"]["broker"]["ok"] is True
        cids = [b.get("client_order_id") for b in fake.order_bodies]
        assert len(cids) == len(set(cids)) >= 1
    finally:
        if proc.returncode is None:
            proc.terminate()
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
        await fake.stop()
    text = err.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert SECRET not in text


async def _true(value: bool) -> bool:
    return value


async def _not_ready_broker(
    http: aiohttp.ClientSession, port: int
) -> tuple[int, dict[str, Any]] | None:
    status, body = await health(http, port)
    broker = body.get("checks", {}).get("broker", {})
    if status == 503 and broker.get("ok") is False and broker.get("detail") != "not reached yet":
        return status, body
    return None


async def _ready(http: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, Any]] | None:
    status, body = await health(http, port)
    return (status, body) if status == 200 else None

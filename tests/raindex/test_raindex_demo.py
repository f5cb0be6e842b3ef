"""``python -m st0x_liquidity demo``: the whole loop on a fresh local devnet, as a user runs it.

The command starts anvil, deploys the test contracts, runs the taker and the real
engine (raindex source, dry-run executor) and prints each fill and hedge. These
tests run it as a subprocess, bounded by ``--duration`` and stopped by Ctrl-C (a
SIGINT to its whole process group, as a terminal sends it), and check what it
printed, what it recorded in SQLite, the dashboard it served, and that the anvil
it started is gone afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

FILL = re.compile(
    r"activity: fill +(BUY|SELL) (\S+) (\w+) @ \S+ \(block \d+, (0x[0-9a-f]{64}:\d+)\)"
)
HEDGE = re.compile(r"activity: hedge +(BUY|SELL) \S+ \w+ \(ref \S+\) -> (\S+)")
HEDGE_FILLED = re.compile(r"activity: hedge +(\S+) filled: ")
DASHBOARD = re.compile(r"dashboard at (http://127\.0\.0\.1:\d+)")
ANVIL = re.compile(r"anvil: ws://127\.0\.0\.1:(\d+)")


async def start_demo(folder: Path, *extra: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "st0x_liquidity", "demo",
        "--dir", str(folder), "--interval", "0.3", "--seed", "7", *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group, like a job in a terminal
    )  # fmt: skip


async def read_until(
    proc: asyncio.subprocess.Process, lines: list[str], done: re.Pattern[str], timeout: float = 90
) -> None:
    """Collect output lines until one matches ``done`` (or fail with what was printed)."""
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError("demo ended early:\n" + "".join(lines[-60:]))
            line = raw.decode(errors="replace")
            lines.append(line)
            if done.search(line):
                return


async def finish(proc: asyncio.subprocess.Process, lines: list[str], timeout: float = 90) -> str:
    assert proc.stdout is not None
    rest, _ = await asyncio.wait_for(proc.communicate(), timeout)
    lines.append(rest.decode(errors="replace"))
    return "".join(lines)


def port_is_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1.0).close()
    except OSError:
        return True
    return False


def recorded(folder: Path) -> tuple[list[str], list[str]]:
    """Trade ids of the fills and client order ids of the hedges in the demo's database."""
    db = sqlite3.connect(folder / "demo.sqlite")
    try:
        fills = [
            f"{tx}:{index}"
            for tx, index in db.execute(
                "SELECT tx_hash, log_index FROM onchain_trades ORDER BY arrival"
            )
        ]
        hedges = [cid for (cid,) in db.execute("SELECT client_order_id FROM hedge_orders")]
    finally:
        db.close()
    return fills, hedges


def check_output(text: str, folder: Path) -> None:
    (folder / "output.txt").write_text(text)  # kept by pytest for a failure's post-mortem
    assert "Traceback" not in text, text[-4000:]
    fills = FILL.findall(text)
    assert fills, text[-3000:]
    assert {symbol for _, _, symbol, _ in fills} <= {"AAPL", "TSLA", "NVDA"}
    # random sizes, fractional included
    assert any(Decimal(amount) != Decimal(amount).to_integral_value() for _, amount, _, _ in fills)
    hedges = HEDGE.findall(text)
    assert hedges and HEDGE_FILLED.findall(text), text[-3000:]
    # What it printed is what the real engine recorded, once each. A batch committed
    # while Ctrl-C stops the engine may go unprinted (the engine does not call its
    # listeners when the append is cancelled), so the database may hold a few more
    # fills, but only after every printed one.
    db_fills, db_hedges = recorded(folder)
    printed = [trade_id for *_, trade_id in fills]
    assert len(set(printed)) == len(printed)
    assert set(db_fills[: len(printed)]) == set(printed), (printed, db_fills)
    assert {cid for _, cid in hedges} <= set(db_hedges)
    assert "== positions" in text and "stopped cleanly" in text


@pytest.mark.parametrize(
    "interface", [[], ["--orderbook-interface", "v6", "--vaultless"]], ids=["v5", "v6-vaultless"]
)
async def test_demo_bounded_by_duration(tmp_path: Path, interface: list[str]) -> None:
    folder = tmp_path / "demo"
    proc = await start_demo(folder, "--duration", "8", *interface)
    text = await finish(proc, [], timeout=150)
    assert proc.returncode == 0, text[-4000:]
    check_output(text, folder)
    config = (folder / "config.toml").read_text()
    assert ('orderbook_interface = "v6"' in config) == bool(interface)
    assert DASHBOARD.search(text), text[:3000]
    anvil = ANVIL.search(text)
    assert anvil is not None and port_is_closed(int(anvil.group(1)))


async def test_demo_serves_the_dashboard_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    proc = await start_demo(folder)  # no --duration: runs until Ctrl-C
    lines: list[str] = []
    try:
        await read_until(proc, lines, HEDGE_FILLED)
        text = "".join(lines)
        dashboard = DASHBOARD.search(text)
        assert dashboard is not None, text[-3000:]
        async with aiohttp.ClientSession() as session:
            async with session.get(dashboard.group(1) + "/health") as resp:
                assert resp.status in (200, 503)
                health = await resp.json()
            async with session.get(dashboard.group(1) + "/") as resp:
                assert resp.status == 200 and "<html" in (await resp.text()).lower()
        assert isinstance(health, dict)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the demo, its anvil and all
        text = await finish(proc, lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, text[-4000:]
    check_output(text, folder)
    anvil = ANVIL.search(text)
    assert anvil is not None and port_is_closed(int(anvil.group(1)))

"""A chain node killed (SIGKILL) or frozen (SIGSTOP) under the running bot.

The raindex source reconnects forever, so the engine's source state stays
"running"; what must change within 30 s is what the operator sees: the page's
source is "node unreachable" (red), ``st0x_source_up`` is 0, a critical alert
is raised and ``/health`` is 503 naming it. When the node is back (restarted
with its state, or SIGCONT), fills flow again and all of it clears.

The settings are the defaults (``unreachable_after`` 10 s, ``request_timeout``
20 s) except a short reconnect backoff and the dashboard's ``clear_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dashboard_support import running_app, wait_until
from st0x_testing import raindex_devnet as dn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DETECT_WITHIN = 30.0


def node_pid(anvil: dn.Anvil) -> int:
    """The anvil binary's pid: ``anvil`` from npm is a Node.js launcher that runs the
    real binary as its child, and signalling the launcher leaves the node running."""
    pid = anvil.process.pid
    for _ in range(3):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            return pid
        pid = int(children[0])
    return pid


def config_text(devnet: dn.Devnet, url: str) -> str:
    text = dn.config_toml(devnet, url, "st0x.db", dashboard_port=0)
    text = text.replace("stall_timeout = 30.0\n", "stall_timeout = 30.0\nbackoff_max = 1.0\n")
    return text + "status_interval = 0.2\nclear_after = 2.0\n"


def sample(metrics: str, name: str) -> float | None:
    prefix = name + '{source="raindex"} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


async def observe(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url + "/health") as r:
        health_status, health = r.status, await r.json()
    async with http.get(url + "/metrics") as r:
        metrics = await r.text()
    async with http.get(url + "/api/state") as r:
        state = await r.json()
    return {
        "health_status": health_status,
        "source_check": health["checks"]["source"],
        "up": sample(metrics, "st0x_source_up"),
        "alerts": [a for a in state["alerts"] if a["kind"] == "source_stalled"],
        "condition": state["status"]["source"]["condition"],
    }


def down(seen: dict[str, Any]) -> bool:
    return (
        seen["health_status"] == 503
        and seen["source_check"]["ok"] is False
        and seen["source_check"]["detail"].startswith("node unreachable")
        and seen["up"] == 0.0
        and len(seen["alerts"]) == 1
        and seen["alerts"][0]["severity"] == "critical"
        and seen["alerts"][0]["message"].startswith("node unreachable")
        and seen["condition"] == "node unreachable"
    )


def healthy(seen: dict[str, Any]) -> bool:
    return (
        seen["health_status"] == 200
        and seen["up"] == 1.0
        and not seen["alerts"]
        and seen["condition"] == "running"
    )


async def until_seen(http: aiohttp.ClientSession, url: str, test: Any, timeout: float) -> float:
    """Seconds until ``test`` holds for what the bot shows (fails after ``timeout``)."""
    start = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - start < timeout:
        last = await observe(http, url)
        if test(last):
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise AssertionError(f"not seen within {timeout}s; last: {last}")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """anvil dumping its state every second (a restart resumes the chain) and a devnet."""
    state = tmp_path / "anvil-state.json"
    anvil = dn.start_anvil(state_path=state, extra=["--state-interval", "1"])
    chain = await dn.Chain.connect(anvil.ws_url)
    box: dict[str, Any] = {"anvil": anvil, "state": state}
    try:
        box["devnet"] = await dn.deploy(chain)
    finally:
        await chain.close()
    try:
        yield box
    finally:
        current: dn.Anvil = box["anvil"]
        for pid in box.get("stopped", ()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        current.stop()


async def take(url: str, devnet: dn.Devnet, buys: bool) -> None:
    chain = await dn.Chain.connect(url)
    try:
        await dn.take(chain, devnet, "AAPL", buys, Decimal("1.5"))
    finally:
        await chain.close()


async def test_node_killed_then_restarted(tmp_path: Path, node: dict[str, Any]) -> None:
    anvil: dn.Anvil = node["anvil"]
    devnet: dn.Devnet = node["devnet"]
    config = tmp_path / "st0x.toml"
    config.write_text(config_text(devnet, anvil.ws_url))
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await take(anvil.ws_url, devnet, True)
        await wait_until(lambda: app.engine.status.fills_ingested == 1, 60)
        await until_seen(http, url, healthy, 60)
        await asyncio.sleep(2.5)  # let anvil dump the state with the fill's block

        os.kill(node_pid(anvil), signal.SIGKILL)
        anvil.process.wait(10)  # the launcher follows its child
        took = await until_seen(http, url, down, DETECT_WITHIN)
        print(f"seen after {took:.1f}s")
        assert took < DETECT_WITHIN
        assert app.engine.status.source_state == "running"  # the engine alone would say so

        node["anvil"] = anvil = dn.start_anvil(
            anvil.port, state_path=node["state"], extra=["--state-interval", "1"]
        )
        await take(anvil.ws_url, devnet, False)
        await wait_until(lambda: app.engine.status.fills_ingested == 2, 60)
        await until_seen(http, url, healthy, 60)


async def test_node_frozen_then_continued(tmp_path: Path, node: dict[str, Any]) -> None:
    anvil: dn.Anvil = node["anvil"]
    devnet: dn.Devnet = node["devnet"]
    config = tmp_path / "st0x.toml"
    config.write_text(config_text(devnet, anvil.ws_url))
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await take(anvil.ws_url, devnet, True)
        await wait_until(lambda: app.engine.status.fills_ingested == 1, 60)
        await until_seen(http, url, healthy, 60)

        pid = node_pid(anvil)
        node["stopped"] = [pid]
        os.kill(pid, signal.SIGSTOP)  # sockets stay open, nothing answers
        try:
            took = await until_seen(http, url, down, DETECT_WITHIN)
            print(f"seen after {took:.1f}s")
            assert took < DETECT_WITHIN
        finally:
            os.kill(pid, signal.SIGCONT)

        await take(anvil.ws_url, devnet, False)
        await wait_until(lambda: app.engine.status.fills_ingested == 2, 60)
        await until_seen(http, url, healthy, 60)

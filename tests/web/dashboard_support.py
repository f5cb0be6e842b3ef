"""Run the real app (replay source following a file, dry-run broker) with its dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from st0x_liquidity.app import App, build_app, open_store, restore_breaker
from st0x_liquidity.config import load_config
from st0x_liquidity.plugins import load_registry

TOKEN = "s3cret-breaker-token"


def fill_line(n: int, symbol: str, direction: str, amount: str, price: str) -> str:
    return json.dumps(
        {
            "tx_hash": f"0x{n:064x}",
            "log_index": 0,
            "symbol": symbol,
            "direction": direction,
            "amount": amount,
            "price": price,
            "block_number": 1000 + n,
            "block_timestamp": "2026-01-02T15:00:00Z",
        }
    )


def append(path: Path, *lines: str) -> None:
    with path.open("a") as fh:
        for text in lines:
            fh.write(text + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    tmp: Path,
    *,
    host: str = "127.0.0.1",
    token: str | None = TOKEN,
    latency: float = 0.3,
    stuck_after: float = 60.0,
    stall_after: float = 300.0,
    broker: str | None = None,
    hedging: str = "",
    clear_after: float = 0.5,
    database_url: str = "st0x.db",
) -> Path:
    """The bot's config in ``tmp`` (and an empty ``fills.jsonl`` the source follows).

    ``broker`` is the ``[broker]`` section's body (default: the dry-run broker taking
    ``latency`` seconds per order); ``hedging`` adds lines to ``[hedging]``; ``clear_after``
    is the dashboard's hysteresis (short here, so tests see recoveries quickly);
    ``database_url`` a PostgreSQL URL to run on that backend."""
    token_line = f'token = "{token}"' if token else ""
    if broker is None:
        broker = f'type = "dry-run"\nprofile = "fractional"\nlatency = {latency}\n'
    path = tmp / "st0x.toml"
    path.write_text(
        f"""
database_url = "{database_url}"
[source]
type = "replay"
path = "fills.jsonl"
follow = true
poll_interval = 0.05
[broker]
{broker}[hedging]
poll_interval = 0.05
poll_jitter = 0.0
{hedging}[engine]
exit_when_source_ends = false
shutdown_timeout = 2.0
[dashboard]
host = "{host}"
port = 0
{token_line}
status_interval = 0.2
stuck_after = {stuck_after}
stall_after = {stall_after}
clear_after = {clear_after}
"""
    )
    (tmp / "fills.jsonl").touch()
    return path


@contextlib.asynccontextmanager
async def running_app(config_path: Path) -> AsyncIterator[tuple[App, str]]:
    """The bot as `run` wires it: store, executor, engine, and the plugin services."""
    registry = load_registry()
    config = load_config(config_path, registry, env={})
    store = open_store(config, lease=True)
    await store.open()
    app = await build_app(config, registry, store)
    await app.executor.start()
    services = [
        s for result in registry.manager.hook.st0x_app_services(app=app.services()) if result for s in result
    ]
    service_tasks = [asyncio.create_task(s()) for s in services]
    await restore_breaker(app)
    engine_task = asyncio.create_task(app.engine.run())
    try:
        for _ in range(500):
            if "dashboard_url" in app.extras:
                break
            for task in service_tasks:
                if task.done():
                    task.result()
            await asyncio.sleep(0.01)
        yield app, str(app.extras["dashboard_url"])
    finally:
        app.engine.request_stop()
        await asyncio.wait_for(asyncio.gather(engine_task, return_exceptions=True), 15)
        for task in service_tasks:
            task.cancel()
        await asyncio.gather(*service_tasks, return_exceptions=True)
        await app.source.close()
        await app.executor.close()
        await store.close()


async def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)

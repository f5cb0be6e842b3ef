"""Under systemd (Type=notify, WatchdogSec=): READY once recovered, pings, STOPPING."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.fills import line, write_lines


def test_run_tells_systemd_it_is_ready_alive_and_stopping(tmp_path: Path) -> None:
    write_lines(tmp_path / "fills.jsonl", [line(1, "tAAPL", "BUY", "0.4")])
    (tmp_path / "config.toml").write_text(
        'database_url = "st0x.db"\nlog_level = "warning"\n'
        '[source]\ntype = "replay"\npath = "fills.jsonl"\nfollow = true\n[broker]\ntype = "dry-run"\n'
    )
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", "config.toml"],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            messages = [sock.recv(4096).decode()]
            while messages[-1] != "READY=1":  # pings may come while it recovers
                messages.append(sock.recv(4096).decode())
            started = time.monotonic()
            before = messages.count("WATCHDOG=1")
            while messages.count("WATCHDOG=1") < before + 3:
                messages.append(sock.recv(4096).decode())
            assert time.monotonic() - started < 5  # every 0.1 s (half of WatchdogSec)
            proc.send_signal(signal.SIGTERM)
            while messages[-1] != "STOPPING=1":
                messages.append(sock.recv(4096).decode())
        except BaseException:
            proc.kill()
            raise
        finally:
            _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert set(messages) == {"READY=1", "WATCHDOG=1", "STOPPING=1"}


async def test_the_watchdog_is_fed_while_a_new_leader_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A standby that takes over said READY=1 long ago: systemd's watchdog is armed, so
    the pings must go on while the new leader recovers, and READY=1 follows recovery."""
    from st0x_liquidity import app as app_module

    sent: asyncio.Queue[str] = asyncio.Queue()
    monkeypatch.setattr(app_module, "notify", sent.put_nowait)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    class Recovering:
        recovered = asyncio.Event()

        async def wait_recovered(self) -> bool:
            await self.recovered.wait()
            return True

        def alive(self) -> bool:
            return True

    engine = Recovering()
    fed = asyncio.create_task(app_module._feed_watchdog(SimpleNamespace(engine=engine)))  # type: ignore[arg-type]
    for _ in range(3):  # not ready yet, and fed all the same
        assert await asyncio.wait_for(sent.get(), 30) == "WATCHDOG=1"
    engine.recovered.set()
    while await asyncio.wait_for(sent.get(), 30) != "READY=1":
        pass
    fed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await fed

"""The systemd unit on both machines of a standby pair (docs/operations.md "systemd on both machines").

Two ``run`` processes on one PostgreSQL database, each with its own
``NOTIFY_SOCKET`` and ``WatchdogSec`` as the unit sets them: the standby
says ``READY=1`` as soon as it serves and pings the watchdog while it
waits; when the leader is killed it takes over and its pings never stop
for as long as systemd's watchdog would allow (the watchdog was armed by
the standby's ``READY=1``, so the new leader's recovery must not starve it).
A pause made on the old leader holds on the new one: the breaker's log is in
the shared database and the new leader re-applies it before recovering.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from support.failover import FAST_HA, free_port
from support.fills import line, write_lines

from st0x_liquidity.store.breaker_log import BreakerLog
from st0x_liquidity.store.read_models import BreakerChange

WATCHDOG_SEC = 4.0
"""systemd's WatchdogSec in this test: the bot pings every half of it."""


def _config(url: str, fills: Path, port: int) -> str:
    ha = "\n".join(f"{k} = {v}" for k, v in FAST_HA.items())
    return (
        f'database_url = "{url}"\nlog_level = "warning"\n'
        f'[source]\ntype = "replay"\npath = "{fills}"\nfollow = true\n'
        '[broker]\ntype = "dry-run"\n'
        f'[dashboard]\nhost = "127.0.0.1"\nport = {port}\n'
        f"[ha]\n{ha}\n"
    )


class Unit:
    """One machine: a directory, a notify socket, the process systemd would run."""

    def __init__(self, root: Path, name: str, url: str, fills: Path) -> None:
        self.dir = root / name
        self.dir.mkdir()
        (self.dir / "config.toml").write_text(_config(url, fills, free_port()))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.dir / "notify.sock"))
        self.messages: list[tuple[float, str]] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.dir / "notify.sock"),
            "WATCHDOG_USEC": str(int(WATCHDOG_SEC * 1_000_000)),
        }
        with (self.dir / "run.log").open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", "config.toml"],
                cwd=self.dir,
                env=env,
                stderr=err,
                text=True,
            )

    def receive(self, until: str, timeout: float = 60.0) -> None:
        """Read notifications until ``until`` arrives (kept in :attr:`messages`)."""
        self.sock.settimeout(timeout)
        while True:
            message = self.sock.recv(4096).decode()
            self.messages.append((time.monotonic(), message))
            if message == until:
                return

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return (self.dir / "run.log").read_text()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


def _holder_pid(url: str) -> int | None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as db:
        row = db.execute("SELECT pid FROM lease WHERE name = 'engine' AND expires_at > now()").fetchone()
    return None if row is None else int(row[0])


@pytest.mark.slow
def test_the_same_unit_on_both_machines_is_ready_and_fed_through_a_takeover(
    tmp_path: Path, postgres_url: str
) -> None:
    fills = tmp_path / "fills.jsonl"
    write_lines(fills, [line(1, "tAAPL", "BUY", "0.4")])
    a = Unit(tmp_path, "a", postgres_url, fills)
    b = Unit(tmp_path, "b", postgres_url, fills)
    try:
        a.start()
        a.receive("READY=1")
        assert _holder_pid(postgres_url) == a.pid()

        b.start()
        b.receive("READY=1")  # a standby is ready as soon as it serves
        b.receive("WATCHDOG=1")
        b.receive("WATCHDOG=1")
        assert _holder_pid(postgres_url) == a.pid(), "the standby must not take a live lease"
        pause = BreakerChange(
            datetime.now(UTC).isoformat(), "pause", "vendor outage", "dashboard", None
        )
        asyncio.run(BreakerLog(postgres_url).append(pause))

        assert a.proc is not None
        a.proc.kill()
        a.proc.wait()
        deadline = time.monotonic() + 60
        while _holder_pid(postgres_url) != b.pid():
            assert time.monotonic() < deadline, b.log()[-3000:]
            b.receive("WATCHDOG=1")
        b.receive("READY=1")  # recovered as the leader
        for _ in range(3):
            b.receive("WATCHDOG=1")

        assert b.proc is not None
        b.proc.send_signal(signal.SIGTERM)
        b.receive("STOPPING=1")
        assert b.proc.wait(timeout=60) == 0, b.log()[-3000:]
    finally:
        a.close()
        b.close()

    kinds = {m for _t, m in b.messages}
    assert kinds == {"READY=1", "WATCHDOG=1", "STOPPING=1"}, b.messages
    pings = [t for t, m in b.messages if m == "WATCHDOG=1"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    # systemd restarts a unit whose pings stop for WatchdogSec: through the
    # takeover (the standby's READY=1 armed the watchdog) they never did.
    assert max(gaps) < WATCHDOG_SEC, (gaps, b.log()[-3000:])
    assert "Traceback" not in b.log(), b.log()[-3000:]
    assert "hedging stays paused (paused before the restart: vendor outage)" in b.log()

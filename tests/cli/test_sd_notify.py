"""Under systemd (Type=notify, WatchdogSec=): READY once recovered, pings, STOPPING."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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
            assert messages[0] == "READY=1"
            started = time.monotonic()
            while messages.count("WATCHDOG=1") < 3:
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

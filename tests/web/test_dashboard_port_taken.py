"""``run`` with the dashboard's port already taken: one line and exit, unless the
dashboard is declared optional (then the bot runs without it and says so)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dashboard_support import write_config


def taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def run(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", str(config)],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_run_exits_with_one_line_when_the_port_is_taken(tmp_path: Path) -> None:
    with taken_port() as holder:
        port = holder.getsockname()[1]
        config = write_config(tmp_path)
        config.write_text(config.read_text().replace("port = 0", f"port = {port}"))
        proc = run(config)
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "dashboard.port" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("config error: dashboard.port: cannot listen on 127.0.0.1:")
    assert str(port) in lines[0] and "optional = true" in lines[0]
    assert err.rstrip().splitlines()[-1] == lines[0]  # the last word, not buried in logs


def test_optional_dashboard_lets_the_bot_run_without_it(tmp_path: Path) -> None:
    with taken_port() as holder:
        port = holder.getsockname()[1]
        config = write_config(tmp_path)
        text = config.read_text().replace("port = 0", f"port = {port}\noptional = true")
        config.write_text(text)
        proc = run(config)
        try:
            time.sleep(4)
            assert proc.poll() is None, proc.communicate()[1]
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "runs without it" in err

"""`report` as its own process beside a running bot, on the same SQLite file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def line(n: int, direction: str, amount: str, price: str) -> str:
    return json.dumps(
        {
            "tx_hash": f"0x{n:064x}",
            "log_index": 0,
            "symbol": "tAAPL",
            "direction": direction,
            "amount": amount,
            "price": price,
            "block_number": n,
            "block_timestamp": "2026-01-02T15:00:00Z",
        }
    )


def count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return -1  # not migrated yet


def wait(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_reporter_loop_follows_a_running_bot(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    fills.write_text("")
    config = tmp_path / "st0x.toml"
    config.write_text(
        """
database_url = "st0x.db"
[source]
type = "replay"
path = "fills.jsonl"
follow = true
poll_interval = 0.05
[broker]
type = "dry-run"
profile = "whole"
fill_price = "100"
[hedging]
poll_interval = 0.05
poll_jitter = 0.0
[engine]
exit_when_source_ends = false
[report]
interval = 0.2
"""
    )
    db = tmp_path / "st0x.db"
    cli = [sys.executable, "-m", "st0x_liquidity"]
    bot = subprocess.Popen([*cli, "run", "--config-file", str(config)], cwd=REPO)
    reporter = None
    try:
        wait(lambda: count(db, "SELECT COUNT(*) FROM metrics_pnl") == 0)
        reporter = subprocess.Popen([*cli, "report", "--config-file", str(config)], cwd=REPO)
        own = os.getpriority(os.PRIO_PROCESS, 0)
        # The loop steps back from the CPU ([report] niceness, default 10) for the bot.
        wait(lambda: os.getpriority(os.PRIO_PROCESS, reporter.pid) == min(own + 10, 19))
        total = 0
        for round_ in range(5):
            with fills.open("a") as fh:
                for k in range(20):
                    n = round_ * 20 + k + 1
                    fh.write(line(n, "SELL" if k % 3 else "BUY", "0.7", f"{101 + k % 5}") + "\n")
            total += 20
            wait(lambda: count(db, "SELECT COUNT(*) FROM onchain_trades") == total)
        wait(
            lambda: (
                count(db, "SELECT COUNT(*) FROM metrics_pnl")
                == total + count(db, "SELECT COUNT(*) FROM hedge_orders WHERE state = 'filled'")
                and count(db, "SELECT COUNT(*) FROM hedge_orders WHERE state != 'filled'") == 0
            )
        )
        reporter.send_signal(signal.SIGTERM)
        assert reporter.wait(10) == 0
        # The loop's table equals a rebuild's.
        with sqlite3.connect(db) as conn:
            before = conn.execute("SELECT * FROM metrics_pnl ORDER BY position").fetchall()
        rebuilt = subprocess.run(
            [*cli, "report", "--config-file", str(config), "--rebuild"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "rebuilt" in rebuilt.stdout
        with sqlite3.connect(db) as conn:
            after = conn.execute("SELECT * FROM metrics_pnl ORDER BY position").fetchall()
        assert after == before
    finally:
        for proc in (reporter, bot):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
    assert bot.returncode == 0


def test_niceness_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "st0x.toml"
    config.write_text(
        'database_url = "st0x.db"\n[source]\ntype = "replay"\npath = "f.jsonl"\n'
        '[broker]\ntype = "dry-run"\n[report]\nniceness = 20\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", "report", "--config-file", str(config)],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "report.niceness: must be between 0 and 19, got 20" in result.stderr

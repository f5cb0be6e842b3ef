"""End to end: the real CLI, SIGKILLed at random moments, restarted each time.

At the end nothing is lost and nothing is doubled: every fill ingested exactly
once, no client_order_id placed twice at the (dry-run) broker, conservation
holds per symbol, the broker's orders and our hedge records agree, and
``audit --json`` explains every share of every fill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from support.fills import random_lines, write_lines

SYMBOLS = ["AAPL", "TSLA", "NVDA", "MSFT", "SPY"]
KILLS = int(os.environ.get("ST0X_KILLS", "22"))


def write_config(tmp: Path, *, follow: bool) -> Path:
    config = tmp / "config.toml"
    config.write_text(
        f"""
database_url = "st0x.db"
log_level = "warning"
[source]
type = "replay"
path = "fills.jsonl"
follow = {str(follow).lower()}
[broker]
type = "dry-run"
profile = "whole"
latency = 0.03
failure_rate = "0.1"
partial_fill_rate = "0.15"
seed = 7
[hedging]
poll_interval = 0.02
poll_jitter = 0.01
failure_backoff = 0.05
failure_backoff_max = 0.2
[engine]
batch_size = 4
shutdown_timeout = 2.0
drain_timeout = 60.0
"""
    )
    return config


def cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "st0x_liquidity", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    rows = random_lines(6000, SYMBOLS, seed=11)
    extra: list[dict[str, object] | str] = [rows[5], rows[100], "{not json", '{"tx_hash": "0x12"}']
    write_lines(tmp_path / "fills.jsonl", [*rows[:1500], *extra, *rows[1500:]])
    config = write_config(tmp_path, follow=False)
    rng = random.Random(3)
    kills = 0
    runs = 0
    while kills < KILLS and runs < 3 * KILLS:
        runs += 1
        proc = cli("run", "--config-file", str(config), cwd=tmp_path)
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
    assert kills >= 20, f"only {kills} runs were still going when killed"

    final = cli("run", "--config-file", str(config), cwd=tmp_path)
    _out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-4000:]

    db = sqlite3.connect(tmp_path / "st0x.db")
    broker = sqlite3.connect(tmp_path / "st0x.db.dry-run.sqlite")

    # Every fill ingested exactly once.
    expected = {(r["tx_hash"], r["log_index"]) for r in rows}
    trades = db.execute("SELECT tx_hash, log_index FROM onchain_trades").fetchall()
    assert len(trades) == len(set(trades)) == len(expected)
    assert set(trades) == expected
    recorded = db.execute("SELECT COUNT(*) FROM events WHERE event_type = 'FillRecorded'").fetchone()[0]
    assert recorded == len(expected)
    skipped = db.execute("SELECT reason FROM skipped_inputs").fetchall()
    assert len(skipped) == 2, skipped

    # No client_order_id placed twice at the broker.
    attempts = broker.execute(
        "SELECT client_order_id, result FROM placements WHERE result != 'accepted'"
    ).fetchall()
    assert attempts == [], "a client_order_id reached the broker twice"
    doubled = broker.execute(
        "SELECT client_order_id FROM orders GROUP BY client_order_id HAVING COUNT(*) > 1"
    ).fetchall()
    assert doubled == []

    # Our records and the broker's agree order by order; nothing left in flight.
    ours = {
        cid: (state, Decimal(filled))
        for cid, state, filled in db.execute("SELECT client_order_id, state, filled_quantity FROM hedge_orders")
    }
    theirs = {
        cid: (outcome, Decimal(filled))
        for cid, outcome, filled in broker.execute("SELECT client_order_id, outcome, filled_quantity FROM orders")
    }
    assert set(theirs) <= set(ours)
    for cid, (outcome, filled) in theirs.items():
        assert ours[cid] == (outcome, filled), cid
    assert all(state in ("filled", "failed", "cancelled") for state, _ in ours.values())
    assert len(theirs) > 50

    # Conservation per symbol.
    flows: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        sign = 1 if r["direction"] == "BUY" else -1
        flows[str(r["symbol"])[1:]] += sign * Decimal(str(r["amount"]))
    for symbol, side, filled in db.execute("SELECT symbol, side, filled_quantity FROM hedge_orders"):
        flows[symbol] += (1 if side == "BUY" else -1) * Decimal(filled)
    nets = {s: Decimal(n) for s, n in db.execute("SELECT symbol, net FROM positions")}
    assert nets == {s: v for s, v in flows.items()}
    for net in nets.values():
        assert abs(net) < 1, "whole-share hedging leaves less than one share open"

    # The audit trail explains every share.
    audit = subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", "audit", "--json", "--config-file", str(config)],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120,
    )
    report = json.loads(audit.stdout)
    assert len(report["fills"]) == len(expected)
    assert all(f["explained"] for f in report["fills"])
    hedged_by_order: dict[str, Decimal] = defaultdict(Decimal)
    for f in report["fills"]:
        for h in f["hedged"]:
            hedged_by_order[h["client_order_id"]] += Decimal(h["quantity"])
    for hedge in report["hedges"]:
        assert hedged_by_order.get(hedge["client_order_id"], Decimal(0)) == Decimal(hedge["filled_quantity"])

    # Rebuilt views equal the incrementally written ones.
    tables = ["onchain_trades", "hedge_orders", "fill_links", "positions", "source_cursors", "skipped_inputs"]
    before = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    db.close()
    subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", "rebuild-views", "--config-file", str(config)],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120,
    )
    db = sqlite3.connect(tmp_path / "st0x.db")
    after = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    assert after == before

"""End to end: the real CLI SIGKILLed at each step of an extended-hours reprice, then restarted.

The dry-run broker trades sessions on a simulated clock; ``ST0X_TEST_KILL_AT``
(engine/faults.py, test-only) kills the process exactly at one step: between
the durable cancel request and the broker's answer, between the broker's
confirmation and its booking, between the booking and the next order, right
after a partial fill was booked, and at the regular open. After the restart:
no ``client_order_id`` reached the broker twice, our records and the broker's
agree order by order, nothing is left in flight, every share of every fill is
accounted for, and ``audit`` explains each fill.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from support.fills import line, write_lines

from st0x_liquidity.domain.sessions import NEW_YORK

TUESDAY_POST = datetime(2026, 3, 3, 17, 0, tzinfo=NEW_YORK)
BEFORE_OPEN = datetime(2026, 3, 4, 9, 29, 52, tzinfo=NEW_YORK)  # room for a slow start


def write_config(
    tmp: Path, *, start: datetime, price: str, partial: str = "0", speed: float = 1.0
) -> Path:
    config = tmp / "config.toml"
    config.write_text(
        f"""
database_url = "st0x.db"
log_level = "info"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "dry-run"
profile = "fractional"
min_notional = "1"
sessions = true
clock_start = "{start.astimezone(UTC).isoformat()}"
clock_speed = {speed}
limit_partial_fraction = "{partial}"
[broker.prices]
AAPL = "{price}"
[hedging]
poll_interval = 0.02
poll_jitter = 0.0
clock_recheck = 0.1
[engine]
shutdown_timeout = 2.0
drain_timeout = 60.0
[extended_hours]
reprice_timeout = 0.6
close_flatten_reprice_timeout = 0.3
check_interval = 0.05
[extended_hours.symbols.AAPL]
"""
    )
    return config


def run(config: Path, *, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ST0X_TEST_KILL_AT"}
    if kill_at is not None:
        env["ST0X_TEST_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", str(config)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


REPORT = (sys.executable, "-m", "st0x_liquidity", "report", "--summary", "--json")
FILLS = [line(1, "tAAPL", "BUY", "10", "100"), line(2, "tAAPL", "BUY", "2.5", "100")]


@pytest.mark.parametrize(
    ("step", "start", "partial"),
    [
        ("cancel_requested", TUESDAY_POST, "0"),
        ("cancel_confirmed", TUESDAY_POST, "0"),
        ("cancel_booked", TUESDAY_POST, "0"),
        ("partial_booked", TUESDAY_POST, "0.4"),
        ("regular_open", BEFORE_OPEN, "0"),
    ],
)
def test_sigkill_at_each_reprice_step_loses_and_doubles_nothing(
    tmp_path: Path, step: str, start: datetime, partial: str
) -> None:
    write_lines(tmp_path / "fills.jsonl", list(FILLS))
    # The limit cannot fill (a sell at 99.5 with the market at 90; a partial fill
    # crosses at 100): it rests until repriced, or until the regular open.
    price = "100" if step == "partial_booked" else "90"
    config = write_config(tmp_path, start=start, price=price, partial=partial)
    killed = run(config, kill_at=step)
    assert killed.returncode == -9, killed.stderr[-3000:]

    db = sqlite3.connect(tmp_path / "st0x.db")
    ledger = sqlite3.connect(tmp_path / "st0x.db.dry-run.sqlite")
    hedges = db.execute(
        "SELECT client_order_id, state, cancel_requested_at, cancel_reason FROM hedge_orders "
        "ORDER BY created_at"
    ).fetchall()
    broker = dict(ledger.execute("SELECT client_order_id, outcome FROM orders").fetchall())
    cid, state, requested, reason = hedges[-1]  # the order the kill caught
    if step in ("cancel_requested", "regular_open"):
        # Durable request, broker not asked: the order still rests there.
        assert (state, reason) == ("submitted", "reprice" if step != "regular_open" else step)
        assert requested is not None and broker[cid] == "open"
    elif step == "cancel_confirmed":
        # The broker ended it; the books do not know yet.
        assert state == "submitted" and broker[cid] == "cancelled"
    elif step == "cancel_booked":
        # Booked. The next intent may already be recorded (the planner runs while the
        # booking commits): take the order whose cancel was requested.
        booked = [h for h in hedges if h[2] is not None]
        assert booked and booked[-1][1] == "cancelled"
    else:
        assert state == "partially_filled"
    db.close()
    ledger.close()
    if step == "cancel_requested":  # what `positions` shows of the limit in flight
        shown = subprocess.run(
            [sys.executable, "-m", "st0x_liquidity", "positions", "--config-file", str(config)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert "limit 99.5 post (onchain)" in shown.stdout, shown.stdout
        # The session now and the next hedge time, from the calendar the engine kept.
        [row] = [r for r in shown.stdout.splitlines() if r.startswith("AAPL")]
        assert row.split()[4:6] == ["post", "now"], shown.stdout

    # Restart: the market now crosses the limits (and the clock moved on).
    later = datetime(2026, 3, 4, 9, 30, 30, tzinfo=NEW_YORK) if step == "regular_open" else start
    # At the open the limit must not fill first (the price stays away) for the market
    # order to take the rest.
    config = write_config(tmp_path, start=later, price="90" if step == "regular_open" else "100")
    final = run(config, kill_at=None)
    assert final.returncode == 0, final.stderr[-4000:]
    assert "Traceback" not in final.stderr, final.stderr[-4000:]
    check_books(tmp_path, config)
    report = subprocess.run(
        [*REPORT, "--config-file", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    slippage = json.loads(report.stdout)["limit_slippage"]
    if step != "regular_open":  # the limits that filled, against the onchain fills
        assert slippage["AAPL"]["orders"] >= 1 and Decimal(slippage["AAPL"]["usd"]) <= 0
    if step == "regular_open":  # after the open the rest went out as a market order
        db = sqlite3.connect(tmp_path / "st0x.db")
        types = db.execute("SELECT order_type FROM hedge_orders ORDER BY created_at").fetchall()
        db.close()
        assert types[-1] == (None,) and (None,) not in types[:-1]


def check_books(tmp_path: Path, config: Path) -> None:
    db = sqlite3.connect(tmp_path / "st0x.db")
    ledger = sqlite3.connect(tmp_path / "st0x.db.dry-run.sqlite")
    # No client_order_id reached the broker twice.
    refused = ledger.execute("SELECT client_order_id FROM placements WHERE result != 'accepted'")
    assert refused.fetchall() == []
    # Ours and the broker's agree; nothing in flight.
    ours = {
        cid: (state, Decimal(filled), otype)
        for cid, state, filled, otype in db.execute(
            "SELECT client_order_id, state, filled_quantity, order_type FROM hedge_orders"
        )
    }
    theirs = {
        cid: (outcome, Decimal(filled))
        for cid, outcome, filled in ledger.execute(
            "SELECT client_order_id, outcome, filled_quantity FROM orders"
        )
    }
    assert set(theirs) <= set(ours)
    for cid, (outcome, filled) in theirs.items():
        assert ours[cid][:2] == (outcome, filled), cid
    assert all(state in ("filled", "failed", "cancelled") for state, _, _ in ours.values())
    # Every share: fills = hedged (by filled orders) + what is still open.
    bought = sum(Decimal(str(r["amount"])) for r in FILLS)
    sold = sum(
        (
            Decimal(f)
            for s, f in db.execute("SELECT side, filled_quantity FROM hedge_orders")
            if s == "SELL"
        ),
        Decimal(0),
    )
    [(net,)] = db.execute("SELECT net FROM positions WHERE symbol = 'AAPL'").fetchall()
    assert Decimal(net) == bought - sold
    assert Decimal(net) * 100 < 1, "less than the minimum notional is left open"
    db.close()
    ledger.close()
    audit = subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", "audit", "--json", "--config-file", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(audit.stdout)
    assert len(report["fills"]) == len(FILLS)
    assert all(f["explained"] for f in report["fills"])
    hedged: dict[str, Decimal] = defaultdict(Decimal)
    for f in report["fills"]:
        for h in f["hedged"]:
            hedged[h["client_order_id"]] += Decimal(h["quantity"])
    for hedge in report["hedges"]:
        assert hedged.get(hedge["client_order_id"], Decimal(0)) == Decimal(hedge["filled_quantity"])

"""PostgreSQL restarted under a running `run`: the bot waits, reports it, and carries on.

A real `run` (replay source following a file, dry-run broker whose orders
are tables of the same database) ingests and hedges a stream of fills while
the test stops the server (every connection dropped, commits in flight) and
starts it again on the same port. Afterwards: every fill recorded exactly
once, every hedge placed once, nothing left unhedged, the views what the log
says, and ``/health`` (and ``st0x_store_up``) said ``store`` unhealthy while the
server was away and healthy again after.

Two outages: one shorter than the lease's time to live (the bot keeps its
lease and carries on), one longer (it cannot renew, steps down to standby in
the same process, and takes the lease again, a new epoch, once the server
answers: nobody else was there to take it).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from support.failover import free_port
from support.postgres import PostgresServer, find_bindir

REPO = Path(__file__).resolve().parents[2]
FILLS = 160
RESTART_AFTER = 50

CONFIG = """
database_url = "{url}"
[source]
type = "replay"
path = "fills.jsonl"
follow = true
poll_interval = 0.02
[broker]
type = "dry-run"
profile = "fractional"
latency = 0.05
[hedging]
poll_interval = 0.05
poll_jitter = 0.0
[engine]
exit_when_source_ends = false
shutdown_timeout = 5.0
[dashboard]
port = {port}
clear_after = 0.5
status_interval = 0.2
"""


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A server of this test's own: restarting the session's would disturb other tests."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (scripts/install-peers.sh)")
    own = PostgresServer(bindir)
    try:
        own.start()
        yield own
    finally:
        own.stop()


def fill_line(n: int, rng: random.Random) -> str:
    symbol = ("tAAPL", "tTSLA", "NVDA0x")[n % 3]
    return json.dumps(
        {
            "tx_hash": f"0x{n:064x}",
            "log_index": 0,
            "symbol": symbol,
            "direction": rng.choice(("BUY", "SELL")),
            "amount": f"{rng.randint(5, 300) / 100}",
            "price": f"{rng.randint(9000, 11000) / 100}",
            "block_number": n,
            "block_timestamp": "2026-01-02T15:00:00Z",
        }
    )


def scalar(url: str, sql: str) -> int:
    with psycopg.connect(url, connect_timeout=2) as db:
        row = db.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def wait(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


LEASE_TTL = 6.0
"""[ha] lease_ttl's default, which this test runs with."""


@pytest.mark.parametrize("outage", [2.0, LEASE_TTL + 3.0], ids=["short", "longer-than-lease"])
def test_a_restarted_database_loses_and_doubles_nothing(
    tmp_path: Path, server: PostgresServer, outage: float
) -> None:
    url = server.new_database()
    (tmp_path / "fills.jsonl").write_text("")
    config = tmp_path / "st0x.toml"
    # A fixed port: a bot that steps down serves its page again on the same one.
    config.write_text(CONFIG.format(url=url, port=free_port()))
    log_path = tmp_path / "bot.log"
    with log_path.open("w") as log_file:
        bot = subprocess.Popen(
            [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", str(config)],
            cwd=tmp_path,
            stderr=log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    health: list[tuple[float, bool]] = []
    store_up: list[tuple[float, float]] = []
    stop_polling = threading.Event()
    try:
        dashboard: list[str] = []

        def dashboard_up() -> bool:
            assert bot.poll() is None, log_path.read_text()
            found = re.search(r"dashboard at (http://\S+)", log_path.read_text())
            if found:
                dashboard.append(found.group(1))
            return bool(found)

        wait(dashboard_up)

        def poll_health() -> None:
            while not stop_polling.is_set():
                try:
                    with urllib.request.urlopen(dashboard[0] + "/health", timeout=2) as r:
                        body = json.loads(r.read())
                except urllib.error.HTTPError as exc:
                    body = json.loads(exc.read())
                except OSError:
                    time.sleep(0.05)
                    continue
                health.append((time.monotonic(), bool(body["checks"]["store"]["ok"])))
                try:
                    with urllib.request.urlopen(dashboard[0] + "/metrics", timeout=2) as r:
                        text = r.read().decode()
                except OSError:
                    continue
                found = re.search(r"^st0x_store_up (\S+)$", text, re.MULTILINE)
                if found:
                    store_up.append((time.monotonic(), float(found.group(1))))
                time.sleep(0.05)

        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()
        wait(lambda: any(ok for _, ok in health))

        rng = random.Random(7)
        restarted = threading.Event()

        def feed() -> None:
            with (tmp_path / "fills.jsonl").open("a") as fh:
                for n in range(1, FILLS + 1):
                    fh.write(fill_line(n, rng) + "\n")
                    fh.flush()
                    time.sleep(0.03)
                    if n == RESTART_AFTER:
                        restarted.set()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        restarted.wait(30)
        # Fills and hedges are in flight: take the database away, then bring it back.
        server.halt()
        down_at = time.monotonic()
        time.sleep(outage)
        server.start_again()
        up_at = time.monotonic()
        feeder.join(60)

        recorded = "SELECT COUNT(*) FROM events WHERE event_type = 'FillRecorded'"
        wait(lambda: scalar(url, recorded) >= FILLS)
        open_hedges = (
            "SELECT COUNT(*) FROM hedge_orders "
            "WHERE state IN ('pending', 'submitted', 'partially_filled')"
        )
        wait(lambda: scalar(url, open_hedges) == 0)
        wait(lambda: bool(health) and health[-1][1] and health[-1][0] > up_at)
        assert bot.poll() is None, log_path.read_text()
        bot.send_signal(signal.SIGTERM)
        assert bot.wait(60) == 0, log_path.read_text()
    finally:
        stop_polling.set()
        if bot.poll() is None:
            bot.kill()
            bot.wait()
    log = log_path.read_text()
    assert "the store waits for it and retries" in log, log
    assert "Traceback" not in log, log
    if outage > LEASE_TTL:
        assert re.search(r"role: standby \(epoch 1\): stepped down: ", log), log
        assert re.search(r"role: leader \(epoch 2\): took the lease", log), log
    else:
        assert "answers again after" in log, log
        assert "stepped down" not in log, log

    # /health: healthy, then store unhealthy while the server was away, then healthy.
    during = [ok for t, ok in health if down_at <= t <= up_at]
    assert during and not any(during), health
    assert any(ok for t, ok in health if t < down_at)
    assert health[-1][1]
    # st0x_store_up says the same.
    assert 0.0 in [v for t, v in store_up if down_at <= t <= up_at], store_up
    assert store_up[-1][1] == 1.0

    with psycopg.connect(url) as db:
        # Every fill recorded exactly once.
        ids = db.execute(
            "SELECT payload::jsonb -> 'fill' ->> 'trade_id' FROM events "
            "WHERE event_type = 'FillRecorded'"
        ).fetchall()
        assert len(ids) == FILLS == len(set(ids))
        assert db.execute("SELECT COUNT(*) FROM onchain_trades").fetchone() == (FILLS,)
        # Every hedge reached the broker once, and the books and the broker agree.
        doubled = db.execute(
            "SELECT client_order_id FROM dry_run_placements GROUP BY client_order_id "
            "HAVING COUNT(*) > 1"
        ).fetchall()
        assert doubled == []
        books = dict(
            db.execute(
                "SELECT client_order_id, filled_quantity FROM hedge_orders "
                "WHERE broker_order_id IS NOT NULL"
            ).fetchall()
        )
        broker = dict(
            db.execute("SELECT client_order_id, filled_quantity FROM dry_run_orders").fetchall()
        )
        assert books == broker and len(books) > RESTART_AFTER // 2
        # Nothing left unhedged beyond what is too small to hedge (the $2 minimum).
        for symbol, open_qty, price in db.execute(
            "SELECT symbol, open_quantity, last_price FROM positions"
        ).fetchall():
            assert abs(Decimal(open_qty)) * Decimal(price) < 2, symbol
    # The views are what the log says.
    cli = [sys.executable, "-m", "st0x_liquidity"]
    before = subprocess.run(
        [*cli, "audit", "--json", "--config-file", str(config)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    subprocess.run(
        [*cli, "rebuild-views", "--config-file", str(config)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    after = subprocess.run(
        [*cli, "audit", "--json", "--config-file", str(config)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert after == before

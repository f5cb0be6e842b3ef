"""The `risk` command end to end: a blocked hedge, a state set from the CLI, a new limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )


LINE = (
    '{{"tx_hash": "0x{n:064x}", "log_index": 0, "symbol": "tAAPL", "direction": "{d}", '
    '"amount": "{a}", "price": "150", "block_number": {n}, "block_timestamp": 1767368000}}\n'
)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return "st0x.db"


def write_config(tmp: Path, risk: str = "", database_url: str = "st0x.db") -> Path:
    config = tmp / "c.toml"
    config.write_text(
        f'database_url = "{database_url}"\n[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        '[broker]\ntype = "dry-run"\n[hedging]\npoll_interval = 0.05\npoll_jitter = 0\n'
        "[engine]\ndrain_timeout = 5\n" + risk
    )
    return config


def audit_hedges(config: Path) -> list[tuple[str, str, str]]:
    out = cli("audit", "--config-file", str(config), "--json")
    assert out.returncode == 0, out.stderr
    return [(h["side"], h["quantity"], h["state"]) for h in json.loads(out.stdout)["hedges"]]


def test_the_huge_replay_line_is_blocked_and_a_halt_from_the_cli_holds(
    tmp_path: Path, database_url: str
) -> None:
    fills = tmp_path / "fills.jsonl"
    fills.write_text(LINE.format(n=1, d="BUY", a="999999999999999999"))
    config = write_config(tmp_path, database_url=database_url)
    run = cli("run", "--config-file", str(config))
    assert run.returncode == 0, run.stderr
    assert "hedge blocked: AAPL SELL 999999999999999999" in run.stderr
    assert "above max_order_quantity 10000" in run.stderr
    assert audit_hedges(config) == []  # nothing placed, nothing reserved
    positions = json.loads(cli("positions", "--config-file", str(config), "--json").stdout)
    assert positions["positions"][0]["open_quantity"] == "999999999999999999"

    # Offset most of it; halt AAPL from the CLI before the bot sees the new line.
    with fills.open("a") as fh:
        fh.write(LINE.format(n=2, d="SELL", a="999999999999999990"))
    bad = cli("risk", "--config-file", str(config), "set-state", "AAPL", "frozen", "--reason", "x")
    assert bad.returncode == 2
    halt = cli(
        "risk", "--config-file", str(config), "set-state", "AAPL", "halted", "--reason", "audit"
    )
    assert halt.returncode == 0, halt.stderr
    assert "trading state of AAPL set to halted" in halt.stdout
    run = cli("run", "--config-file", str(config))
    assert run.returncode == 0, run.stderr
    assert "trading state is halted (audit)" in run.stderr
    assert audit_hedges(config) == []
    shown = json.loads(cli("risk", "--config-file", str(config), "show", "--json").stdout)
    assert shown["states"]["AAPL"]["state"] == "halted"
    assert shown["limits"]["*"]["max_order_quantity"] == "10000"

    # Active again: the 9 shares go out.
    cli("risk", "--config-file", str(config), "set-state", "all", "active", "--reason", "done")
    run = cli("run", "--config-file", str(config))
    assert run.returncode == 0, run.stderr
    assert audit_hedges(config) == [("SELL", "9", "filled")]


def test_reconciliation_through_the_cli_with_the_dry_run_broker(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    fills.write_text(LINE.format(n=1, d="BUY", a="3"))
    config = write_config(tmp_path)
    run = cli("run", "--config-file", str(config))
    assert run.returncode == 0, run.stderr
    assert audit_hedges(config) == [("SELL", "3", "filled")]
    # The first reconciliation ran before the hedge: nothing held, nothing expected.
    report = json.loads(cli("audit", "--config-file", str(config), "--json").stdout)
    assert set(report) == {"fills", "hedges", "reconciliation"}
    assert report["reconciliation"]["status"] == "ok"

    # Next start: the dry-run broker holds -3 AAPL, the books say 10 - 3 = 7.
    config = write_config(
        tmp_path,
        '[reconciliation]\nhalt_on_mismatch = true\nstarting_positions = { AAPL = "10" }\n',
    )
    fills.write_text(fills.read_text() + LINE.format(n=2, d="BUY", a="2"))
    run = cli("run", "--config-file", str(config))
    assert run.returncode == 0, run.stderr
    assert "reconciliation mismatch: AAPL broker holds -3, the books say 7" in run.stderr
    recon = json.loads(cli("audit", "--config-file", str(config), "--json").stdout)[
        "reconciliation"
    ]
    assert recon["status"] == "mismatch"
    assert recon["symbols"] == [
        {"symbol": "AAPL", "broker": "-3", "books": "7", "difference": "-10", "mismatch": True}
    ]
    text = cli("audit", "--config-file", str(config)).stdout
    assert ": mismatch" in text and "MISMATCH" in text
    # Halted by reconciliation: the new fill's hedge did not go out.
    assert audit_hedges(config) == [("SELL", "3", "filled")]
    shown = json.loads(cli("risk", "--config-file", str(config), "show", "--json").stdout)
    assert shown["states"]["AAPL"]["state"] == "halted"
    assert shown["states"]["AAPL"]["actor"] == "reconciliation"

"""What the operator sees must be true: help texts, one-line errors, honest wording."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.cli import build_parser
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.tables import money, table

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-fills.jsonl"


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def write_config(tmp: Path, *, path: str = "fills.jsonl", extra: str = "") -> Path:
    config = tmp / "c.toml"
    config.write_text(
        'database_url = "st0x.db"\nlog_level = "info"\n'
        f'[source]\ntype = "replay"\npath = "{path}"\n'
        '[broker]\ntype = "dry-run"\n'
        "[hedging]\npoll_interval = 0.05\npoll_jitter = 0\n" + extra
    )
    return config


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append(((*path, name), child))
                found.extend(commands(child, (*path, name)))
    return found


def test_every_subcommand_has_a_description() -> None:
    found = commands(build_parser(load_registry()))
    names = {" ".join(p) for p, _ in found}
    assert {"run", "positions", "audit", "rebuild-views", "report", "plugins"} <= names
    assert {"inventory", "rebalance", "rebalance status", "schwab auth"} <= names
    for path, parser in found:
        assert parser.description and len(parser.description) > 10, " ".join(path)


@pytest.mark.parametrize("command", [["positions"], ["rebalance", "status"], ["plugins"]])
def test_help_prints_the_description(command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0
    usage, _, rest = result.stdout.partition("\n\n")
    assert usage.startswith("usage:") and rest.splitlines()[0][:1].isupper(), result.stdout


def test_a_command_of_a_missing_plugin_names_the_package() -> None:
    result = cli(
        "schwab", "auth", "--config-file", "x.toml", env={"ST0X_DISABLE_PLUGINS": "schwab"}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "st0x-schwab" in lines[0] and "pip install 'st0x-liquidity[schwab]'" in lines[0]
    assert "invalid choice" not in result.stderr
    # an unknown command that no plugin provides is still argparse's usage error
    assert "invalid choice" in cli("nonsense").stderr


def test_a_missing_replay_file_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = cli("run", "--config-file", str(write_config(tmp_path, path="nope.jsonl")))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "config error: source.path: replay file not found"
    ), result.stderr
    (tmp_path / "dir.jsonl").mkdir()
    result = cli("run", "--config-file", str(write_config(tmp_path, path="dir.jsonl")))
    assert result.returncode == 2 and "source.path: is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_exit_when_source_ends_false_keeps_running_until_a_signal(tmp_path: Path) -> None:
    shutil.copy(SAMPLE, tmp_path / "fills.jsonl")
    config = write_config(tmp_path, extra="[engine]\nexit_when_source_ends = false\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen.append(line)
            if "source ended" in line or not line:
                break
        assert "source ended" in seen[-1], "".join(seen)
        time.sleep(1.5)
        assert proc.poll() is None, "exited although exit_when_source_ends = false"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    positions = cli("positions", "--config-file", str(config), "--json")
    assert positions.returncode == 0 and '"AAPL"' in positions.stdout


def test_audit_text_says_each_thing_once(tmp_path: Path) -> None:
    shutil.copy(SAMPLE, tmp_path / "fills.jsonl")
    config = write_config(tmp_path)
    assert cli("run", "--config-file", str(config)).returncode == 0
    result = cli("audit", "--config-file", str(config))
    assert result.returncode == 0
    hedges = [line for line in result.stdout.splitlines() if line.startswith("hedge ")]
    assert hedges
    assert "filled filled" not in result.stdout and "@ None" not in result.stdout
    for line in hedges:
        assert re.fullmatch(
            r"hedge \S+ (BUY|SELL) [0-9.]+: \w+, [0-9.]+ executed( @ [0-9.]+)?( \(.*\))?", line
        ), line


def test_money_is_rounded_to_cents_for_text_only() -> None:
    assert money("1886.195590000000000000000001") == "1886.20"
    assert money("-0.004") == "0.00" and money("-1.005") == "-1.00" and money(None) == "-"
    assert money("-0.05660744", places=4) == "-0.0566"
    text = table(["SYMBOL", "REALIZED"], [["AAPL", "1.00"], ["TOTAL", "-12345.67"]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[1].endswith("     1.00")


@given(
    st.lists(
        st.tuples(
            st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6),
            st.decimals(
                allow_nan=False,
                allow_infinity=False,
                min_value=-(10**15),
                max_value=10**15,
                places=26,
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_summary_columns_align_whatever_the_digits(rows: list[tuple[str, Decimal]]) -> None:
    text = table(["SYMBOL", "REALIZED"], [[s, money(v)] for s, v in rows])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # right-aligned numbers end together
    for (_, value), line in zip(rows, lines[1:], strict=True):
        shown = line.split()[-1]
        assert re.fullmatch(r"-?[0-9]+\.[0-9]{2}", shown)
        assert abs(Decimal(shown) - value) <= Decimal("0.005")


def test_plugins_checks_a_config_the_way_the_runbook_says(tmp_path: Path) -> None:
    """``plugins --config-file F``: the list, then OK, or one line naming a bad key."""
    import subprocess
    import sys

    (tmp_path / "fills.jsonl").touch()
    good = tmp_path / "good.toml"
    good.write_text(
        'database_url = "st0x.db"\n[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        '[broker]\ntype = "dry-run"\n'
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text() + '[engine]\nbatch_size = "500"\n')
    ok = subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", "plugins", "--config-file", str(good)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines()[-1].endswith("OK (broker dry-run, source replay)")
    refused = subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", "plugins", "--config-file", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert "engine.batch_size" in refused.stderr

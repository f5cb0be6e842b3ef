"""A database the bot cannot use is one line and a status, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.fills import line, write_lines


def st0x(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", *args, "--config-file", "config.toml"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def config(tmp: Path, database_url: str) -> None:
    (tmp / "config.toml").write_text(
        f'database_url = "{database_url}"\nlog_level = "warning"\n'
        '[source]\ntype = "replay"\npath = "fills.jsonl"\n[broker]\ntype = "dry-run"\n'
    )


def one_line(done: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    assert done.returncode == status, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert text in lines[0], lines[0]


def test_an_unwritable_database_url_is_one_line(tmp_path: Path) -> None:
    write_lines(tmp_path / "fills.jsonl", [line(1, "tAAPL", "BUY", "1")])
    config(tmp_path, "/proc/st0x-not-here/st0x.db")  # not writable, even by root
    one_line(st0x(tmp_path, "run"), 1, "database error: cannot open database /proc/")


def test_a_corrupt_page_is_one_line_for_rebuild_and_report(tmp_path: Path) -> None:
    write_lines(tmp_path / "fills.jsonl", [line(n, "tAAPL", "BUY", "0.4") for n in range(1, 200)])
    config(tmp_path, "st0x.db")
    assert st0x(tmp_path, "run").returncode == 0
    db = tmp_path / "st0x.db"
    data = bytearray(db.read_bytes())
    assert len(data) > 4096 * 4
    data[4096 * 2 : 4096 * 2 + 400] = b"\x5a" * 400  # a b-tree page overwritten
    db.write_bytes(bytes(data))
    for args in (("rebuild-views",), ("report", "--once"), ("audit",)):
        one_line(st0x(tmp_path, *args), 1, "database error:")


def test_an_unreachable_postgres_database_is_one_line_for_every_command(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    password = "s3cr3t-pw"
    write_lines(tmp_path / "fills.jsonl", [line(1, "tAAPL", "BUY", "1")])
    config(tmp_path, f"postgresql://bot:{password}@127.0.0.1:{port}/st0x")
    with (tmp_path / "config.toml").open("a") as fh:
        fh.write('[rebalancing]\ndry_run = true\n[rebalancing.equity]\ntarget = "0.5"\ndeviation = "0.1"\n')
    for args in (
        ("run",),
        ("positions",),
        ("audit",),
        ("rebuild-views",),
        ("report", "--once"),
        ("inventory",),
        ("rebalance", "status"),
        ("risk", "show"),
    ):
        if args[0] in ("rebalance", "risk"):  # their options follow the group
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "st0x_liquidity",
                    args[0],
                    "--config-file",
                    "config.toml",
                    *args[1:],
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        else:
            done = st0x(tmp_path, *args)
        one_line(done, 1, "database error: ")
        assert f"postgresql://bot@127.0.0.1:{port}/st0x" in done.stderr, args
        assert password not in done.stderr, args

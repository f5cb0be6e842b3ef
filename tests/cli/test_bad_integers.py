"""Integers the store cannot hold are skipped inputs, not the end of ingestion."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from support.fills import line, write_lines


def test_a_log_index_or_block_past_2_63_is_skipped_and_later_lines_are_ingested(
    tmp_path: Path,
) -> None:
    rows: list[dict[str, object] | str] = [
        line(1, "tAAPL", "BUY", "0.4"),
        {**line(2, "tAAPL", "BUY", "0.4"), "log_index": 2**63},
        {**line(3, "tAAPL", "BUY", "0.4"), "block_number": 2**64 + 5},
        line(4, "tAAPL", "BUY", "0.4"),
    ]
    write_lines(tmp_path / "fills.jsonl", rows)
    (tmp_path / "config.toml").write_text(
        'database_url = "st0x.db"\n[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        '[broker]\ntype = "dry-run"\n[engine]\nexit_when_source_ends = true\n'
    )
    for _ in range(2):  # and again on restart: nothing is stuck
        done = subprocess.run(
            [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", "config.toml"],
            check=False,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
    db = sqlite3.connect(tmp_path / "st0x.db")
    try:
        assert db.execute("SELECT block_number FROM onchain_trades ORDER BY 1").fetchall() == [
            (1,),
            (4,),
        ]
        reasons = [r for (r,) in db.execute("SELECT reason FROM skipped_inputs")]
    finally:
        db.close()
    assert len(reasons) == 2
    assert "log_index must be below 2^63" in reasons[0]
    assert "block_number must be below 2^63" in reasons[1]

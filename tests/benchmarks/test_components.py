"""The component benchmark runs end to end on a small input and checks its replay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "components.py"


def test_components_benchmark_measures_both_halves() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "1", "--fills", "2000"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(out.stdout)
    assert result["fills"] == 2000 and len(result["rounds"]) == 1
    assert result["engine_alone_fills_per_second"] > 0
    assert result["writer_alone_fills_per_second"] > 0
    assert result["writer_alone_cpu_user_seconds"] >= 0

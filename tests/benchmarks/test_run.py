"""The benchmark script runs end to end on a small input (figures are not checked here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def test_the_throughput_benchmark_runs_and_hedges() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--only", "throughput", "--runs", "1",
         "--no-normal"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(out.stdout)["throughput"]
    assert result["fills"] == 10_000
    assert result["fills_per_second"] > 0
    assert result["hedges_filled"] > 0

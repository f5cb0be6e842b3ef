"""Run ``benchmarks/run.py`` of two checkouts alternately and report both, with ratios.

    git worktree add --detach ../st0x-old e6f7f58
    python benchmarks/side_by_side.py --old ../st0x-old --pairs 3

This machine is shared and its speed swings within minutes, so the two
codes are interleaved (old, new, old, new, …) and compared by median: a
ratio measured in one run is worth more than either figure alone. Each run
is a separate process with the checkout's own ``src`` first on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


def run(checkout: Path, args: list[str]) -> dict[str, Any]:
    paths = [checkout / "src", *sorted((checkout / "plugins").glob("*/src"))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    done = subprocess.run(
        [sys.executable, str(checkout / "benchmarks" / "run.py"), *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout of the code before")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    extra = ["--no-normal", "--runs", "1", *(["--quick"] if args.quick else [])]
    codes = {"old": args.old.resolve(), "new": HERE}
    samples: dict[str, dict[str, list[float]]] = {k: {} for k in codes}

    def note(code: str, key: str, value: float) -> None:
        samples[code].setdefault(key, []).append(value)

    for _ in range(args.pairs):
        for code, checkout in codes.items():
            t = run(checkout, [*extra, "--only", "throughput"])["throughput"]
            note(code, "fills_per_second", t["fills_per_second"])
            note(code, "bare_sqlite_rows_per_second", t["bare_sqlite_rows_per_second"])
            note(code, "ratio_to_bare", t["engine_vs_bare_event_rate"])
            note(code, "engine_cpu_seconds", t["engine_process_cpu_seconds"])
            note(code, "writer_process_cpu_seconds", t.get("writer_process_cpu_seconds", 0))
    for code, checkout in codes.items():
        for _ in range(max(1, args.pairs // 2)):
            both = run(checkout, [*extra, "--only", "latency", "--only", "memory"])
            note(code, "latency_p50_ms", both["latency"]["p50_ms"])
            note(code, "latency_p99_ms", both["latency"]["p99_ms"])
            note(code, "memory_growth_mb", both["memory"]["growth_mb"])
    medians = {
        code: {k: statistics.median(v) for k, v in per.items()} for code, per in samples.items()
    }
    ratios = {
        k: round(medians["new"][k] / medians["old"][k], 3)
        for k in medians["new"]
        if medians["old"].get(k)
    }
    print(json.dumps({"samples": samples, "medians": medians, "new_over_old": ratios}, indent=2))


if __name__ == "__main__":
    main()

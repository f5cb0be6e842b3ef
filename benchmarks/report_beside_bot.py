"""Benchmark for issue 6: does the P&L reporter slow the bot it runs beside?

    python benchmarks/report_beside_bot.py [--fills 20000] [--runs 3]

The bot (real CLI, replay source, dry-run broker) ingests a backlog of
``--fills`` fills and exits when the source is drained; we time it alone and
with ``report`` looping beside it at ``interval = 0.1`` (the worst case: the
default is 30 s), alternating the two so that the shared machine's load hits
both alike. Prints JSON with the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
database_url = "st0x.db"
log_level = "warning"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "dry-run"
profile = "whole"
fill_price = "100"
[hedging]
poll_interval = 0.05
poll_jitter = 0.0
[engine]
exit_when_source_ends = true
[report]
interval = 0.1
niceness = {niceness}
"""


def write_fills(path: Path, count: int) -> None:
    rng = random.Random(7)
    symbols = [f"t{s}" for s in ("AAPL", "TSLA", "NVDA", "MSFT", "SPY")]
    with path.open("w") as fh:
        for n in range(1, count + 1):
            record = {
                "tx_hash": f"0x{n:064x}",
                "log_index": 0,
                "symbol": rng.choice(symbols),
                "direction": rng.choice(("BUY", "SELL")),
                "amount": str(rng.randint(1, 40) / 10),
                "price": str(rng.randint(9000, 11000) / 100),
                "block_number": n,
                "block_timestamp": 1767368000 + n,
            }
            fh.write(json.dumps(record) + "\n")


def one_run(work: Path, fills: Path, *, with_reporter: bool) -> float:
    for leftover in work.glob("st0x.db*"):
        leftover.unlink()
    shutil.copy(fills, work / "fills.jsonl")
    cli = [sys.executable, "-m", "st0x_liquidity"]
    config = str(work / "st0x.toml")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": work}
    start = time.monotonic()
    bot = subprocess.Popen([*cli, "run", "--config-file", config], **quiet)  # type: ignore[call-overload]
    reporter = None
    if with_reporter:
        while not (work / "st0x.db").exists() and bot.poll() is None:
            time.sleep(0.02)
        reporter = subprocess.Popen([*cli, "report", "--config-file", config], **quiet)  # type: ignore[call-overload]
    code = bot.wait()
    elapsed = time.monotonic() - start
    if reporter is not None:
        reporter.send_signal(signal.SIGTERM)
        reporter.wait(30)
    if code != 0:
        raise SystemExit(f"bot exited with {code}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fills", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--niceness", type=int, default=10, help="[report] niceness")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "st0x.toml").write_text(CONFIG.format(niceness=args.niceness))
        fills = work / "backlog.jsonl"
        write_fills(fills, args.fills)
        alone, beside = [], []
        for _ in range(args.runs):
            alone.append(one_run(work, fills, with_reporter=False))
            beside.append(one_run(work, fills, with_reporter=True))
    result = {
        "fills": args.fills,
        "runs": args.runs,
        "niceness": args.niceness,
        "load_average": os.getloadavg()[0],
        "bot_alone_s": [round(t, 2) for t in alone],
        "bot_with_reporter_s": [round(t, 2) for t in beside],
        "median_alone_s": round(statistics.median(alone), 2),
        "median_with_reporter_s": round(statistics.median(beside), 2),
        "slowdown": round(statistics.median(beside) / statistics.median(alone), 3),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

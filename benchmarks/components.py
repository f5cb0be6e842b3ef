"""Issue 2's ingestion split into its two halves, each measured alone.

    python benchmarks/components.py --runs 5

End to end, the engine's process and the store's writer process share this
machine's two cores, and the shared machine's speed swings by up to 2x within
minutes: a change of a few percent in either half disappears in end-to-end
runs. Each half alone does a fixed amount of work, so its figures compare
across runs and across versions of the code:

* **engine alone**: the real engine and store over the benchmark's 100,000
  fills, with the writer replaced by "encode the transaction's frame, report
  it committed" (nothing is written, so no fill is ever a known duplicate);
* **writer alone**: the frames a real run sent to its writer, captured, then
  replayed into a fresh writer process on a fresh database (wall time
  includes its fsyncs; CPU includes its checkpoint thread).

A bare sqlite3 insert is measured in each round, for the machine's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from run import bare_sqlite, make_fills, run_engine

from st0x_liquidity.domain.fills import Fill
from st0x_liquidity.store import write_worker, writer_process
from st0x_liquidity.store.sqlite import SqliteStore


@contextmanager
def _writer_replaced() -> Iterator[None]:
    """Transactions are encoded as for the writer, then reported committed at once."""

    def send(self: SqliteStore, plan: Any, epoch: int) -> Future[Any]:
        write_worker.write_frame(io.BytesIO(), ("transaction", (plan, epoch)))
        done: Future[Any] = Future()
        done.set_result(None)
        return done

    real = SqliteStore._send_sync
    SqliteStore._send_sync = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        SqliteStore._send_sync = real  # type: ignore[method-assign]


@contextmanager
def _frames_captured(sink: IO[bytes]) -> Iterator[None]:
    """Every transaction frame sent to the writer is also written to ``sink``."""
    real = writer_process.write_frame

    class Tee:
        def __init__(self, stream: IO[bytes]) -> None:
            self.stream = stream

        def write(self, data: bytes) -> int:
            sink.write(data)
            return self.stream.write(data)

        def flush(self) -> None:
            self.stream.flush()

    def write_frame(stream: IO[bytes], value: object) -> None:
        is_transaction = isinstance(value, tuple) and value[:1] == ("transaction",)
        real(Tee(stream) if is_transaction else stream, value)  # type: ignore[arg-type]

    writer_process.write_frame = write_frame
    try:
        yield
    finally:
        writer_process.write_frame = real


def _cpu_children() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def engine_alone(fills: list[Fill]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d, _writer_replaced():
        cpu = time.process_time()
        elapsed, _, _ = asyncio.run(run_engine(fills, Path(d)))
        cpu = time.process_time() - cpu
    return {"fills_per_second": round(len(fills) / elapsed), "cpu_seconds": round(cpu, 2)}


def capture_frames(fills: list[Fill], path: Path) -> None:
    with tempfile.TemporaryDirectory() as d, path.open("wb") as sink, _frames_captured(sink):
        asyncio.run(run_engine(fills, Path(d)))


def writer_alone(frames: Path, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "replay.db"

        async def create() -> None:
            async with SqliteStore(db):
                pass

        asyncio.run(create())
        script = Path(write_worker.__file__).resolve()
        user, system = _cpu_children()
        start = time.perf_counter()
        with frames.open("rb") as requests:
            subprocess.run(
                [sys.executable, "-I", str(script), str(db), "FULL"],
                stdin=requests,
                stdout=subprocess.DEVNULL,
                check=True,
            )
        elapsed = time.perf_counter() - start
        user2, system2 = _cpu_children()
        with sqlite3.connect(db) as check:
            events = check.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        if events < count:  # a replay that wrote nothing would look very fast
            raise SystemExit(f"the replay wrote {events} events for {count} fills")
    return {
        "fills_per_second": round(count / elapsed),
        "cpu_user_seconds": round(user2 - user, 2),
        "cpu_system_seconds": round(system2 - system, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (medians reported)")
    parser.add_argument("--fills", type=int, default=100_000)
    args = parser.parse_args()
    fills = make_fills(args.fills)
    rounds = []
    with tempfile.TemporaryDirectory() as d:
        frames = Path(d) / "frames.bin"
        capture_frames(fills, frames)
        for _ in range(args.runs):
            bare = bare_sqlite(args.fills, Path(tempfile.mkdtemp(dir=d)))
            rounds.append(
                {
                    "engine_alone": engine_alone(fills),
                    "writer_alone": writer_alone(frames, args.fills),
                    "bare_sqlite_rows_per_second": round(args.fills / bare),
                }
            )

    def median(half: str, key: str) -> float:
        return statistics.median(r[half][key] for r in rounds)

    result = {
        "fills": args.fills,
        "runs": args.runs,
        "engine_alone_fills_per_second": median("engine_alone", "fills_per_second"),
        "engine_alone_cpu_seconds": median("engine_alone", "cpu_seconds"),
        "writer_alone_fills_per_second": median("writer_alone", "fills_per_second"),
        "writer_alone_cpu_user_seconds": median("writer_alone", "cpu_user_seconds"),
        "writer_alone_cpu_system_seconds": median("writer_alone", "cpu_system_seconds"),
        "bare_sqlite_rows_per_second": statistics.median(
            r["bare_sqlite_rows_per_second"] for r in rounds
        ),
        "rounds": rounds,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Benchmarks: ingestion throughput, hedge decision latency, memory.

    python benchmarks/run.py            # all three, prints JSON
    python benchmarks/run.py --quick    # smaller sizes, for a smoke run
    python benchmarks/run.py --only throughput --runs 5

Throughput is compared, in the same run, with a bare sqlite3 insert of the same
number of event rows (same pragmas, same batch size), because this machine is
shared and noisy: the ratio is more stable than either number. Throughput runs
are repeated (``--runs``) and the median reported.

Everything runs first with the store's default durability (``synchronous=FULL``:
every commit is fsynced before a hedge may be placed): those are the headline
figures. The same throughput and latency are then measured with the opt-in
``synchronous=NORMAL`` (WAL: a commit survives a process crash, not a power
loss), labelled as such. Beside the latency, the same run measures the floor
the disk sets: a bare one-row sqlite3 commit with ``synchronous=FULL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from st0x_liquidity.builtin.dry_run import DryRunConfig, DryRunExecutor
from st0x_liquidity.config import parse_config
from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.domain.orders import MarketOrder, OrderUpdate
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.engine import Engine
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.protocols import Cursor, FillItem, SourceItem
from st0x_liquidity.store.sqlite import SqliteStore

T0 = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)
SYMBOLS = [f"S{i:02d}" for i in range(20)]


def iter_fills(count: int, seed: int = 5) -> Iterator[Fill]:
    """The benchmark's fills, made one at a time (same sequence as make_fills)."""
    rng = random.Random(seed)
    for n in range(count):
        yield Fill(
            TradeId(f"0x{n + 1:064x}", n % 4),
            Symbol(rng.choice(SYMBOLS).replace("S", "X")),
            rng.choice((Direction.BUY, Direction.SELL)),
            Decimal(rng.randint(1, 5000)) / 1000,
            Decimal(rng.randint(5000, 50000)) / 100,
            n,
            T0,
        )


def make_fills(count: int, seed: int = 5) -> list[Fill]:
    return list(iter_fills(count, seed))


class ListSource:
    name = "bench"

    def __init__(self, fills: Iterable[Fill]) -> None:
        self.fills = fills

    async def stream(self, cursor: Cursor | None) -> AsyncIterator[SourceItem]:
        for i, f in enumerate(self.fills):
            yield FillItem(f, {"i": i})
            if i % 500 == 499:
                await asyncio.sleep(0)

    async def close(self) -> None:
        return None


def config_for(tmp: Path) -> Any:
    return parse_config(
        {
            "database_url": str(tmp / "bench.db"),
            "source": {"type": "replay", "path": str(tmp / "unused.jsonl")},
            "broker": {"type": "dry-run"},
            "hedging": {"poll_interval": 0.01, "poll_jitter": 0},
            "engine": {"batch_size": 500, "drain_timeout": 120},
        },
        load_registry(),
        config_dir=tmp,
        env={},
    )


async def run_engine(
    fills: Iterable[Fill], tmp: Path, synchronous: str = "FULL"
) -> tuple[float, int, Engine]:
    config = config_for(tmp)
    store = SqliteStore(config.database_path, synchronous=synchronous)
    await store.open()
    executor = DryRunExecutor(DryRunConfig(), tmp / "broker.sqlite")
    await executor.start()
    engine = Engine(config, store, executor, ListSource(fills), database_id=store.database_id)
    start = time.perf_counter()
    cpu = time.process_time()
    await engine.run()
    elapsed = time.perf_counter() - start
    LAST_RUN["engine_process_cpu_seconds"] = time.process_time() - cpu
    LAST_RUN["writer_peak_rss_kb"] = _writer_peak_kb(store)  # 0 without a writer process
    events = (await store.fetch("SELECT COUNT(*) FROM events"))[0][0]
    await executor.close()
    await store.close()
    return elapsed, int(events), engine


LAST_RUN: dict[str, float] = {}


def _writer_peak_kb(store: SqliteStore) -> int:
    """Peak RSS of the store's writer process (VmHWM, read while it runs).

    getrusage(RUSAGE_CHILDREN) would report the engine's own size: the child
    is forked from it before it runs the writer script.
    """
    writer = store._writer
    proc = getattr(writer, "_proc", None)
    if proc is None:
        return 0
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def bare_sqlite(rows: int, tmp: Path, batch: int = 500, synchronous: str = "FULL") -> float:
    db = sqlite3.connect(tmp / "bare.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute(
        "CREATE TABLE events (aggregate_type TEXT, aggregate_id TEXT, sequence INTEGER, "
        "event_type TEXT, event_version INTEGER, payload TEXT, metadata TEXT, recorded_at TEXT, "
        "PRIMARY KEY (aggregate_type, aggregate_id, sequence))"
    )
    payload = json.dumps({"fill": {"amount": "1.234", "price": "123.45", "tx": "0x" + "a" * 64}})
    start = time.perf_counter()
    for offset in range(0, rows, batch):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, 1, ?, '{}', '2026-01-01T00:00:00')",
            [("Position", "X", offset + i, "FillRecorded", payload) for i in range(batch)],
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def bench_throughput(count: int, runs: int = 1, synchronous: str = "FULL") -> dict[str, Any]:
    fills = make_fills(count)
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            children = _children_cpu()
            elapsed, events, engine = asyncio.run(run_engine(fills, Path(d), synchronous))
            cpu = LAST_RUN["engine_process_cpu_seconds"]
            children = _children_cpu() - children
            bare = bare_sqlite(events, Path(d), synchronous=synchronous)
        samples.append(
            {
                "fills_per_second": round(count / elapsed),
                "seconds": round(elapsed, 3),
                # CPU of the engine's process and of the store's writer process
                # (it ends with the store, so its CPU is counted by then).
                "engine_process_cpu_seconds": round(cpu, 2),
                "writer_process_cpu_seconds": round(children, 2),
                "events": events,
                "hedges_filled": engine.status.hedges_filled,
                "bare_sqlite_rows_per_second": round(events / bare),
                "engine_vs_bare_event_rate": round((events / elapsed) / (events / bare), 3),
            }
        )
    median = sorted(samples, key=lambda r: r["fills_per_second"])[len(samples) // 2]
    return {
        "synchronous": synchronous,
        "fills": count,
        "runs": runs,
        **median,
        "fills_per_second_all_runs": [r["fills_per_second"] for r in samples],
        "engine_vs_bare_all_runs": [r["engine_vs_bare_event_rate"] for r in samples],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class TimedExecutor(DryRunExecutor):
    """Records when each order reaches the broker call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.called: dict[str, float] = {}
        self.event = asyncio.Event()

    async def place_market_order(self, order: MarketOrder) -> OrderUpdate:
        self.called[order.symbol.ticker] = time.perf_counter()
        self.event.set()
        return await super().place_market_order(order)


class PushSource:
    name = "bench"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Fill | None] = asyncio.Queue()

    async def stream(self, cursor: Cursor | None) -> AsyncIterator[SourceItem]:
        n = 0
        while (f := await self.queue.get()) is not None:
            n += 1
            yield FillItem(f, {"i": n})

    async def close(self) -> None:
        return None


async def _latency(samples: int, tmp: Path, synchronous: str) -> list[float]:
    config = config_for(tmp)
    store = SqliteStore(config.database_path, synchronous=synchronous)
    await store.open()
    executor = TimedExecutor(DryRunConfig(profile="whole"), tmp / "broker.sqlite")
    await executor.start()
    source = PushSource()
    engine = Engine(config, store, executor, source, database_id=store.database_id)
    task = asyncio.create_task(engine.run())
    while not engine.status.market_open:
        await asyncio.sleep(0.01)
    latencies = []
    for n in range(samples):
        symbol = Symbol(f"L{n % 50}")
        executor.event.clear()
        f = Fill(TradeId(f"0x{n + 1:064x}", 0), symbol, Direction.BUY, Decimal(2), Decimal(100), n, T0)
        handed = time.perf_counter()
        source.queue.put_nowait(f)
        await executor.event.wait()
        latencies.append((executor.called[symbol.ticker] - handed) * 1000)
        while engine.orders.tasks:
            await asyncio.sleep(0)
    source.queue.put_nowait(None)
    await task
    await executor.close()
    await store.close()
    return latencies


def _percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50_ms": round(statistics.median(values), 3),
        "p99_ms": round(values[int(len(values) * 0.99) - 1], 3),
        "max_ms": round(values[-1], 3),
    }


def bare_commit_latency(samples: int, tmp: Path) -> dict[str, float]:
    """The disk's floor: one-row sqlite3 commits with WAL and synchronous=FULL."""
    db = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    times = []
    for n in range(samples):
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (n, "x" * 400))
        db.execute("COMMIT")
        times.append((time.perf_counter() - start) * 1000)
    db.close()
    return _percentiles(times)


def bench_latency(samples: int, synchronous: str = "FULL") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        lat = asyncio.run(_latency(samples, Path(d), synchronous))
        floor = bare_commit_latency(samples, Path(d)) if synchronous == "FULL" else None
    result: dict[str, Any] = {"synchronous": synchronous, "samples": samples, **_percentiles(lat)}
    if floor is not None:
        result["bare_sqlite_full_commit"] = floor
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _rss_child(count: int) -> None:
    # Fills made as the source reads them, as a real source streams them: a
    # list of 100,000 made up front is ~70 MB of the harness's own, which
    # would be counted as the engine's growth.
    with tempfile.TemporaryDirectory() as d:
        config_for(Path(d))  # the plugins' imports, done before the peak is reset
        reset = _reset_peak_rss()
        asyncio.run(run_engine(iter_fills(count), Path(d)))
    # The engine's process and the store's writer process.
    engine = _peak_rss_kb() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(engine, int(LAST_RUN["writer_peak_rss_kb"]))


def _reset_peak_rss() -> bool:
    """Start this process's peak RSS afresh (Linux), so the engine's run sets it.

    Importing the plugins (web3 and its curves) briefly peaks at ~180 MB in
    some runs and ~100 MB in others; counted in the peak, that spike hid up to
    80 MB of what the run itself holds.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_engine_only(count: int) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(count)],
        capture_output=True, text=True, check=True,
    )
    engine, writer = out.stdout.strip().splitlines()[-1].split()
    return int(engine), int(writer)


def bench_memory(small: int, large: int) -> dict[str, Any]:
    a, wa = _rss_engine_only(small)
    b, wb = _rss_engine_only(large)
    return {
        f"peak_rss_mb_{small}": round(a / 1024, 1),
        f"peak_rss_mb_{large}": round(b / 1024, 1),
        f"writer_peak_rss_mb_{small}": round(wa / 1024, 1),
        f"writer_peak_rss_mb_{large}": round(wb / 1024, 1),
        "growth_mb": round((b + wb - a - wa) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 fills, 200 samples")
    parser.add_argument("--runs", type=int, help="throughput repetitions (median reported)")
    parser.add_argument(
        "--only", choices=("throughput", "latency", "memory"), action="append",
        help="run only these benchmarks (repeatable)",
    )
    parser.add_argument("--no-normal", action="store_true", help="skip synchronous=NORMAL runs")
    parser.add_argument("--rss-child", type=int)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child)
        return
    count = 10_000 if args.quick else 100_000
    runs = args.runs or (1 if args.quick else 3)
    samples = 200 if args.quick else 2000
    only = set(args.only or ("throughput", "latency", "memory"))
    results: dict[str, Any] = {}
    if "throughput" in only:
        results["throughput"] = bench_throughput(count, runs)
        if not args.no_normal:
            results["throughput_synchronous_normal"] = bench_throughput(count, runs, "NORMAL")
    if "latency" in only:
        results["latency"] = bench_latency(samples)
        if not args.no_normal:
            results["latency_synchronous_normal"] = bench_latency(samples, "NORMAL")
    if "memory" in only:
        results["memory"] = bench_memory(count // 10, count)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

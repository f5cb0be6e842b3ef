"""Benchmark for issue 22: how long do fills stay unhedged, by the sessions enabled?

    python benchmarks/extended_week.py [--fills-per-hour 2] [--symbols 3] [--seed 22]

One simulated week (Monday 00:00 to Monday 00:00 New York, 2026-03-09) of
onchain fills, the same fills at the same prices in every run, goes through the
real engine (real SQLite store, the dry-run broker with sessions, its clock
frozen and moved by this script) three times: regular hours only (no symbol
opted in), extended (pre- and after-hours), and extended + overnight.

The clock steps from event to event: every fill's time and every session
boundary. At each step the script sets the clock, pushes the fills of that
moment, and waits until the engine has settled (everything ingested, no order
or commit in flight, every symbol either hedged below the minimum or in no open
session). Limits fill at once (the dry-run price is the reference), so a hedge
completes at the step it is placed in: the figures measure when the engine
*may* hedge, not market fill rates.

Reported, per configuration: unhedged share-hours (the integral of each
symbol's unhedged shares, from the week's start until the week's fills are all
hedged: the clock runs on to the next Monday 10:00 without new fills) and the exposure window of each fill
(from its arrival until its symbol's unhedged shares next drop below the
minimum order, i.e. until its FIFO shares are covered), p50 and p99 in hours.
Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from support.harness import QueueSource, start_engine  # noqa: E402

from st0x_liquidity.builtin.dry_run_sessions import DryRunSessionsExecutor  # noqa: E402
from st0x_liquidity.config import parse_config  # noqa: E402
from st0x_liquidity.domain.fills import Direction, Fill, TradeId  # noqa: E402
from st0x_liquidity.domain.sessions import (  # noqa: E402
    NEW_YORK,
    Session,
    hedgeable_seconds,
    rule_calendar,
    session_windows,
)
from st0x_liquidity.domain.symbols import Symbol  # noqa: E402
from st0x_liquidity.plugins import load_registry  # noqa: E402

WEEK_START = datetime(2026, 3, 9, 0, 0, tzinfo=NEW_YORK).astimezone(UTC)
WEEK = timedelta(days=7)
DRAIN = timedelta(hours=10)
"""After the week's last fill the clock runs on to Monday 10:00 (past the next regular
open), so every fill of the week is counted until it is hedged, whatever the mode."""
MODES = ("regular", "extended", "overnight")


def make_fills(symbols: list[str], per_hour: float, seed: int) -> list[Fill]:
    """A Poisson stream per symbol over the week, around a slowly wandering price."""
    rng = random.Random(seed)
    fills: list[Fill] = []
    n = 0
    for symbol in symbols:
        price = Decimal(rng.randint(80, 400))
        t = WEEK_START
        while True:
            t += timedelta(hours=rng.expovariate(per_hour))
            if t >= WEEK_START + WEEK:
                break
            n += 1
            price = max(Decimal(1), price + Decimal(rng.randint(-50, 50)) / 100)
            fills.append(
                Fill(
                    TradeId(f"0x{n:064x}", 0),
                    Symbol.parse("t" + symbol),
                    rng.choice([Direction.BUY, Direction.BUY, Direction.SELL]),
                    Decimal(rng.randint(10, 5000)) / 1000,
                    price,
                    n,
                    t.replace(microsecond=0),
                )
            )
    return sorted(fills, key=lambda f: (f.block_timestamp, f.trade_id))


def config_for(tmp: Path, mode: str, symbols: list[str]) -> Any:
    opted = {} if mode == "regular" else {s: {"overnight": mode == "overnight"} for s in symbols}
    raw = {
        "database_url": str(tmp / "st0x.db"),
        "log_level": "warning",
        "source": {"type": "replay", "path": str(tmp / "unused.jsonl")},
        "broker": {
            "type": "dry-run",
            "sessions": True,
            "clock_start": WEEK_START.isoformat(),
            "clock_speed": 0,
            "profile": "fractional",
            "min_notional": "1",
        },
        "hedging": {"poll_interval": 0.002, "poll_jitter": 0.0, "clock_recheck": 0.005},
        "engine": {"shutdown_timeout": 1.0},
        "reconciliation": {"enabled": False},
        "extended_hours": {"symbols": opted, "check_interval": 0.005},
    }
    return parse_config(raw, load_registry(), config_dir=tmp, env={})


async def run_mode(mode: str, fills: list[Fill], symbols: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        config = config_for(tmp, mode, symbols)
        broker = DryRunSessionsExecutor(config.broker, tmp / "ledger.sqlite")
        await broker.start()
        source = QueueSource()
        engine, store, task = await start_engine(config, broker, source)
        days = rule_calendar(
            WEEK_START.date() - timedelta(days=1), (WEEK_START + WEEK + DRAIN).date()
        )
        boundaries = {
            t
            for w in session_windows(days, overnight=True)
            for t in (w.start, w.end)
            if WEEK_START <= t <= WEEK_START + WEEK + DRAIN
        }
        by_time: dict[datetime, list[Fill]] = {}
        for f in fills:
            by_time.setdefault(f.block_timestamp, []).append(f)
        end = WEEK_START + WEEK + DRAIN
        steps = sorted(set(by_time) | boundaries | {end})
        regular = [
            w for w in session_windows(days, overnight=False) if w.session is Session.REGULAR
        ]

        def market_open(t: datetime) -> bool:
            return any(w.start <= t < w.end for w in regular)

        pushed = 0
        unsettled = 0
        share_hours = Decimal(0)
        waiting: dict[str, list[tuple[datetime, Decimal]]] = {s: [] for s in symbols}
        windows: list[float] = []
        started = time.perf_counter()
        await _until(engine.recovered.is_set, 10)
        previous = WEEK_START
        exposure = dict.fromkeys(symbols, Decimal(0))
        for t in steps:
            share_hours += sum(exposure.values()) * Decimal((t - previous).total_seconds() / 3600)
            previous = t
            broker.clock.set(t)
            for f in by_time.get(t, ()):
                source.push(f)
                pushed += 1
                waiting[f.symbol.ticker].append((t, f.amount))

            def settled(t: datetime = t, pushed: int = pushed) -> bool:
                if engine.status.fills_ingested < pushed or engine._commits:
                    return False
                if engine.orders.busy or engine.limits.busy:
                    return False
                if engine.status.market_open != market_open(t):
                    return False
                for ticker, book in engine.books.items():
                    if book.in_flight is not None:
                        return False
                    if book.decide(engine.rules) is None:
                        continue
                    hedgeable = (
                        engine.status.market_open
                        or engine.sessions.session(ticker, t)[0].session.extended
                    )
                    if hedgeable:
                        return False
                return True

            if not await _until(settled, 5):
                unsettled += 1
            for ticker in symbols:
                book = engine.books.get(ticker)
                net = abs(book.net) if book is not None else Decimal(0)
                exposure[ticker] = net
                if (
                    book is not None
                    and book.in_flight is None
                    and book.decide(engine.rules) is None
                ):
                    windows.extend((t - at).total_seconds() / 3600 for at, _ in waiting[ticker])
                    waiting[ticker] = []
        for ticker in symbols:  # still open after the drain (none expected): counted to it
            windows.extend((end - at).total_seconds() / 3600 for at, _ in waiting[ticker])
        elapsed = time.perf_counter() - started
        enabled = {
            "regular": frozenset({Session.REGULAR}),
            "extended": frozenset({Session.REGULAR, Session.PRE, Session.POST}),
            "overnight": frozenset(Session) - {Session.CLOSED},
        }[mode]
        hedgeable = hedgeable_seconds(
            session_windows(days, overnight=True), enabled, WEEK_START, WEEK_START + WEEK
        )
        placed, filled = engine.status.hedges_placed, engine.status.hedges_filled
        engine.request_stop()
        await asyncio.wait_for(task, 30)
        await store.close()
        await broker.close()
    windows.sort()
    return {
        "mode": mode,
        "fills": len(fills),
        "steps": len(steps),
        "unsettled_steps": unsettled,
        "hedges_placed": placed,
        "hedges_filled": filled,
        "hedgeable_hours_per_week": round(hedgeable / 3600, 1),
        "unhedged_share_hours": round(float(share_hours), 1),
        "exposure_window_hours_p50": round(statistics.median(windows), 2),
        "exposure_window_hours_p99": round(windows[int(0.99 * (len(windows) - 1))], 2),
        "wall_seconds": round(elapsed, 1),
    }


async def _until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            # Settled twice in a row, a tick apart: nothing was about to start.
            await asyncio.sleep(0.01)
            if predicate():
                return True
        await asyncio.sleep(0.002)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills-per-hour", type=float, default=2.0, help="per symbol")
    parser.add_argument("--symbols", type=int, default=3)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--only", choices=MODES, action="append")
    args = parser.parse_args()
    symbols = ["AAPL", "TSLA", "NVDA", "MSFT", "SPY"][: args.symbols]
    fills = make_fills(symbols, args.fills_per_hour, args.seed)
    results = [asyncio.run(run_mode(m, fills, symbols)) for m in (args.only or MODES)]
    json.dump({"week_start": WEEK_START.isoformat(), "results": results}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

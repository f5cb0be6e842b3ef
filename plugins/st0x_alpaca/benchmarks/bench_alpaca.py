"""Benchmarks of the Alpaca Trading API plugin against its fake (real HTTP on 127.0.0.1).

    python plugins/st0x_alpaca/benchmarks/bench_alpaca.py            # both, scaled
    python plugins/st0x_alpaca/benchmarks/bench_alpaca.py --full     # real 200/min window

1. **Placement overhead**: time from calling ``place_market_order`` until the
   request reaches the fake, against a bare ``aiohttp`` POST of the same body
   (same session settings, same run, interleaved). Reports medians and their
   ratio (target ≤ 1.5×).
2. **Sustained**: N hedges across 20 symbols (one in flight per symbol, as the
   engine does) with the fake enforcing Alpaca's 200-requests-per-window limit.
   Reports 429s answered by the fake, duplicates, and total time against the
   floor the limit imposes. ``--time-scale 10`` (default) shrinks the window
   from 60 s to 6 s and the client's budget to match, so it runs in ~30 s.
   A third run overdrives the client (400/min against the fake's 200) so the
   fake answers 429s: all of them must be absorbed (no error, no duplicate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from decimal import Decimal
from typing import Any

import aiohttp
from st0x_alpaca import AlpacaTradingConfig, AlpacaTradingExecutor, order_body
from st0x_testing.fake_alpaca import FILL_AT_ONCE, FakeAlpacaTrading

from st0x_liquidity import Direction, MarketOrder, Secret, Symbol

KEY = "PKBENCH"
SECRET = "bench-secret"
SYMBOLS = [f"SYM{chr(65 + i)}" for i in range(20)]


def _order(cid: str, symbol: str = "AAPL") -> MarketOrder:
    return MarketOrder(Symbol(symbol), Direction.BUY, Decimal("0.123456789"), cid, Decimal("100"))


def _last_post_arrival(fake: FakeAlpacaTrading) -> float:
    for method, _path, stamp in reversed(fake.requests):
        if method == "POST":
            return stamp
    raise RuntimeError("no POST reached the fake")


async def placement_overhead(iterations: int = 300) -> dict[str, Any]:
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET, rate_limit=10**9) as fake:
        fake.default_script = FILL_AT_ONCE
        fake.cash = Decimal(10**12)
        config = AlpacaTradingConfig(
            api_key=Secret(KEY),
            api_secret=Secret(SECRET),
            base_url=fake.base_url,
            rate_limit_per_minute=10**9,
            rate_limit_burst=10**6,
        )
        executor = AlpacaTradingExecutor(config)
        await executor.start()
        url = fake.base_url + "/v2/orders"
        headers = {
            "APCA-API-KEY-ID": KEY,
            "APCA-API-SECRET-KEY": SECRET,
            "Content-Type": "application/json",
        }
        plugin: list[float] = []
        bare: list[float] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for i in range(iterations + 20):
                order = _order(f"p-{i}")
                started = time.monotonic()
                await executor.place_market_order(order)
                plugin_latency = _last_post_arrival(fake) - started

                body = order_body(_order(f"b-{i}"))
                started = time.monotonic()
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                bare_latency = _last_post_arrival(fake) - started
                if i >= 20:  # warm-up: connections, caches
                    plugin.append(plugin_latency)
                    bare.append(bare_latency)
        await executor.close()
    plugin_ms = statistics.median(plugin) * 1000
    bare_ms = statistics.median(bare) * 1000
    return {
        "benchmark": "placement_overhead",
        "iterations": iterations,
        "plugin_median_ms": round(plugin_ms, 4),
        "bare_median_ms": round(bare_ms, 4),
        "plugin_p90_ms": round(sorted(plugin)[int(0.9 * len(plugin))] * 1000, 4),
        "bare_p90_ms": round(sorted(bare)[int(0.9 * len(bare))] * 1000, 4),
        "ratio": round(plugin_ms / bare_ms, 3),
        "target_ratio": 1.5,
    }


async def sustained(
    hedges: int = 1000, time_scale: float = 10.0, client_rate: float = 190.0
) -> dict[str, Any]:
    """``client_rate`` above 200 overdrives the limiter so the fake answers 429s."""
    window = 60.0 / time_scale
    limit = 200
    async with FakeAlpacaTrading(
        key_id=KEY, secret_key=SECRET, rate_limit=limit, rate_window=window
    ) as fake:
        fake.default_script = FILL_AT_ONCE
        fake.cash = Decimal(10**12)
        config = AlpacaTradingConfig(
            api_key=Secret(KEY),
            api_secret=Secret(SECRET),
            base_url=fake.base_url,
            rate_limit_per_minute=client_rate * time_scale,
            max_attempts=10,
            rate_limit_burst=10,
            retry_after_max=window,
            timeout=30.0,
        )
        executor = AlpacaTradingExecutor(config)
        started = time.monotonic()
        await executor.start()
        per_symbol = math.ceil(hedges / len(SYMBOLS))
        placed: list[str] = []
        errors: list[str] = []

        async def worker(symbol: str, count: int) -> None:
            for n in range(count):
                try:
                    update = await executor.place_market_order(_order(f"{symbol}-{n}", symbol))
                    placed.append(update.broker_order_id)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")

        counts = [min(per_symbol, hedges - i * per_symbol) for i in range(len(SYMBOLS))]
        await asyncio.gather(*(worker(s, c) for s, c in zip(SYMBOLS, counts, strict=True) if c > 0))
        elapsed = time.monotonic() - started
        await executor.close()
        requests = len(fake.requests)
        rate_limited = fake.rate_limited
        cids = [o.client_order_id for o in fake.orders.values()]
    floor = (math.ceil(requests / limit) - 1) * window
    return {
        "benchmark": "sustained",
        "hedges": hedges,
        "symbols": len(SYMBOLS),
        "time_scale": time_scale,
        "client_rate_per_min": client_rate,
        "window_s": window,
        "limit_per_window": limit,
        "requests": requests,
        "placed": len(placed),
        "orders_at_fake": len(fake.orders),
        "duplicates": len(cids) - len(set(cids)),
        "errors": errors[:5],
        "answered_429": rate_limited,
        "elapsed_s": round(elapsed, 3),
        "floor_s": round(floor, 3),
        "elapsed_over_floor": round(elapsed / floor, 3) if floor else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="real 60 s window (takes ~5 min)")
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--hedges", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--only", choices=("overhead", "sustained", "overdriven"))
    args = parser.parse_args(argv)
    scale = 1.0 if args.full else args.time_scale
    results = []
    if args.only in (None, "overhead"):
        results.append(asyncio.run(placement_overhead(args.iterations)))
    if args.only in (None, "sustained"):
        results.append(asyncio.run(sustained(args.hedges, scale)))
    if args.only in (None, "overdriven"):
        results.append(asyncio.run(sustained(args.hedges // 2, scale, client_rate=400.0)))
    for result in results:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

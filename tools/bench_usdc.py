"""USDC rebalancing figures: wall time of each flow and the calls it makes.

    .venv/bin/python tools/bench_usdc.py [--runs 5] [--amount 100]

Runs both flows (broker -> Base vault, Base vault -> broker) ``--runs`` times each on
two local anvil chains with the CCTP V2 stand-ins, the fake Iris and the fake Broker
API, every fake delay at zero: the time is the bot's own overhead (signing,
confirmations of one block, polling intervals of 20 ms, SQLite appends) plus local
RPC. The Broker API client's own rate limiter (190 requests/min, burst 10) is lifted
unless ``--broker-rate-limit 0``: with it, each broker call after the burst waits about
0.3 s and dominates the time. Counts the JSON-RPC calls per chain and method (a wrapper around each chain
client's ``request``), the Iris requests and the Broker API requests of each flow.
Uses the test environment of ``tests/rebalancing/usdc_env.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "rebalancing"))

from usdc_env import make_usdc_env, write_config  # type: ignore[import-not-found]  # noqa: E402

from st0x_liquidity.rebalancing.chain import JsonRpc  # noqa: E402
from st0x_liquidity.rebalancing.log import RebalancingLog  # noqa: E402
from st0x_liquidity.rebalancing.usdc_flow import TO_OFFCHAIN, TO_ONCHAIN  # noqa: E402
from st0x_liquidity.store.sqlite import SqliteStore  # noqa: E402


def count_calls(node: JsonRpc, counter: Counter[str], chain: str) -> None:
    original = node.request

    async def request(method: str, params: list[Any]) -> Any:
        counter[f"{chain}:{method}"] += 1
        return await original(method, params)

    node.request = request  # type: ignore[method-assign]


async def main(runs: int, amount: Decimal, rate_limit: float | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = await make_usdc_env(Path(tmp), cash=Decimal(10**7))
        if rate_limit is not None:  # the Broker API client's own pacing (190/min by default)
            write_config(env, broker=f"rate_limit_per_minute = {rate_limit}\n")
        await env.deposit_to_vault(Decimal(10**6))
        async with SqliteStore(Path(tmp) / "st0x.db"):
            pass
        log = RebalancingLog(Path(tmp) / "st0x.db")
        await log.open()
        runner = await env.runner(log)
        rpc: Counter[str] = Counter()
        count_calls(runner.chain.node, rpc, "base")
        assert runner.eth is not None and runner.iris is not None
        count_calls(runner.eth.node, rpc, "ethereum")
        results: dict[str, list[tuple[float, Counter[str], int, int]]] = {
            TO_ONCHAIN: [],
            TO_OFFCHAIN: [],
        }
        try:
            for _ in range(runs):
                for kind in (TO_ONCHAIN, TO_OFFCHAIN):
                    rpc.clear()
                    iris_before = env.iris.requests
                    broker_before = len(env.fake.requests)
                    start = time.perf_counter()
                    op = await runner.request(kind, "USDC", amount, "cli")
                    state = await runner.run(op)
                    elapsed = time.perf_counter() - start
                    assert state.status == "completed", state.ended
                    results[kind].append(
                        (
                            elapsed,
                            Counter(rpc),
                            env.iris.requests - iris_before,
                            len(env.fake.requests) - broker_before,
                        )
                    )
        finally:
            await runner.close()
            await runner.custodian.close()
            await log.close()
            await env.close()
    for kind, rows in results.items():
        times = [r[0] for r in rows]
        print(f"{kind} ({amount} USDC, {runs} runs):")
        print(
            f"  wall: median {statistics.median(times) * 1000:.0f} ms, "
            f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
        )
        totals = [sum(r[1].values()) for r in rows]
        print(
            f"  JSON-RPC calls: first run {totals[0]} (approvals included), later runs "
            f"{min(totals[1:] or totals)}-{max(totals[1:] or totals)}; "
            f"Iris requests {min(r[2] for r in rows)}-{max(r[2] for r in rows)}; "
            f"Broker API requests {min(r[3] for r in rows)}-{max(r[3] for r in rows)}"
        )
        for label, calls in (("first run", rows[0][1]), ("last run", rows[-1][1])):
            per_chain = Counter({c: 0 for c in ("ethereum", "base")})
            for key, n in calls.items():
                per_chain[key.split(":")[0]] += n
            print(f"  {label}: ethereum {per_chain['ethereum']}, base {per_chain['base']}")
            for key, n in sorted(calls.items()):
                print(f"    {key}: {n}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--amount", default="100")
    parser.add_argument(
        "--broker-rate-limit",
        type=float,
        default=1e6,
        help="Broker API requests per minute the client allows (0: the default 190/min)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    limit = args.broker_rate_limit or None
    asyncio.run(main(args.runs, Decimal(args.amount), limit))

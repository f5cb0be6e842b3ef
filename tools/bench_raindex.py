#!/usr/bin/env python
"""Raindex benchmarks (issue 3): decode rate, block-to-hedge latency, backfill time.

    .venv/bin/python tools/bench_raindex.py decode   [--logs 50000]
    .venv/bin/python tools/bench_raindex.py latency  [--fills 500]
    .venv/bin/python tools/bench_raindex.py backfill [--fills 50000]
    .venv/bin/python tools/bench_raindex.py all

Everything runs against a real anvil (from tools/node_modules) on 127.0.0.1 and the
project's devnet contracts; numbers print as one JSON object per benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from eth_abi.abi import encode
from st0x_testing import raindex_devnet as dn

from st0x_liquidity.raindex import abi
from st0x_liquidity.raindex.decode import (
    OrderSide,
    RawLog,
    TokenInfo,
    decode_event,
    owned_sides,
    side_to_fill,
)
from st0x_liquidity.raindex.floats import decimal_to_float


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- decode -------------------------------------------------------------------------------


def bench_decode(count: int) -> dict[str, Any]:
    owner, usdc, equity, book = "0x" + "dd" * 20, "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "0b" * 20
    ios = [(usdc, b"\x00" * 32), (equity, b"\x00" * 32)]
    order = (owner, ("0x" + "22" * 20, "0x" + "33" * 20, b"\x00" * 32), ios, ios, b"\xee" * 32)
    topic = "0x" + abi.topic0("TakeOrderV3").hex()
    logs = []
    for i in range(count):
        data = encode(
            list(abi.event_types("TakeOrderV3")),
            [
                "0x" + "11" * 20,
                (order, i % 2, 1 - i % 2, []),
                decimal_to_float(Decimal(i % 97 + 1) / 100),
                decimal_to_float(Decimal(i % 89 + 1) * 190),
            ],
        )
        logs.append(
            {
                "address": book,
                "topics": [topic],
                "data": "0x" + data.hex(),
                "blockNumber": hex(1000 + i // 100),
                "blockHash": "0x" + "12" * 32,
                "transactionHash": f"0x{i:064x}",
                "logIndex": hex(i % 100),
                "removed": False,
                "blockTimestamp": "0x6553f100",
            }
        )
    tokens = {usdc: TokenInfo("USDC", 6), equity: TokenInfo("tAAPL", 18)}
    stamp = datetime.now(UTC)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        events = [decode_event(RawLog.from_rpc(obj), book) for obj in logs]
        fills = [side_to_fill(s, tokens, stamp) for s in owned_sides(events, owner) if isinstance(s, OrderSide)]
        runs.append(time.perf_counter() - start)
        assert len(fills) == count
    best = min(runs)
    return {"benchmark": "decode", "logs": count, "logs_per_second": round(count / best), "runs_s": runs}


# -- latency ------------------------------------------------------------------------------


async def bench_latency(fills: int, enrich: bool = True) -> dict[str, Any]:  # noqa: PLR0915
    from st0x_liquidity.app import build_app, open_store
    from st0x_liquidity.config import parse_config, read_toml
    from st0x_liquidity.plugins import load_registry

    anvil = dn.start_anvil()
    chain = await dn.Chain.connect(anvil.ws_url)
    tmp = Path(tempfile.mkdtemp(prefix="st0x-bench-"))
    try:
        devnet = await dn.deploy(chain)
        (tmp / "config.toml").write_text(dn.config_toml(devnet, anvil.ws_url, "bench.sqlite"))
        registry = load_registry()
        config = parse_config(read_toml(tmp / "config.toml"), registry, config_dir=tmp)
        config = attrs.evolve(config, source=attrs.evolve(config.source, enrich=enrich))
        store = open_store(config)
        await store.open()
        app = await build_app(config, registry, store)
        await app.executor.start()
        hedged: asyncio.Queue[float] = asyncio.Queue()
        place = app.executor.place_market_order

        async def timed_place(order: Any) -> Any:
            hedged.put_nowait(time.perf_counter())
            return await place(order)

        app.executor.place_market_order = timed_place  # type: ignore[method-assign]
        heads: asyncio.Queue[float] = asyncio.Queue()
        source: Any = app.source
        on_head = source._on_head

        def timed_head(head: dict[str, Any]) -> None:
            if head:
                heads.put_nowait(time.perf_counter())
            on_head(head)

        source._on_head = timed_head
        engine = asyncio.create_task(app.engine.run())
        await asyncio.sleep(2.0)
        while not heads.empty():
            heads.get_nowait()
        total, ws = [], []
        for i in range(fills):
            data = dn.calldata(
                "TestOrderBook",
                "takeOrders",
                [(devnet.orders["AAPL"], 1 if i % 2 else 0, 0 if i % 2 else 1, [])],
                [decimal_to_float(Decimal("0.1") if i % 2 == 0 else Decimal("19"))],
                [decimal_to_float(Decimal("19.1") if i % 2 == 0 else Decimal("0.1"))],
            )
            tx_hash = await chain.rpc(
                "eth_sendTransaction", [{"from": dn.TAKER, "to": devnet.orderbook, "data": data, "gas": hex(2_000_000)}]
            )
            mined = time.perf_counter()  # anvil automines inside eth_sendTransaction
            head_at = await asyncio.wait_for(heads.get(), 30)
            hedge_at = await asyncio.wait_for(hedged.get(), 30)
            ws.append(head_at - mined)
            total.append(hedge_at - mined)
            while not heads.empty():
                heads.get_nowait()
            del tx_hash
        app.engine.request_stop()
        await asyncio.wait_for(engine, 30)
        await app.source.close()
        await app.executor.close()
        await store.close()
    finally:
        await chain.close()
        anvil.stop()
    ms = [x * 1000 for x in total]
    wms = [x * 1000 for x in ws]
    return {
        "benchmark": "block_to_hedge_latency",
        "fills": fills,
        "enrichment": enrich,
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(_pct(ms, 0.99), 2),
        "ws_delivery_p50_ms": round(statistics.median(wms), 2),
        "ws_delivery_p99_ms": round(_pct(wms, 0.99), 2),
        "note": "from eth_sendTransaction returning (anvil automine: block mined) to Executor.place_market_order",
    }


# -- backfill -----------------------------------------------------------------------------


async def bench_backfill(fills: int, per_tx: int = 100) -> dict[str, Any]:
    from raindex_bench_support import Collector  # type: ignore[import-not-found]

    from st0x_liquidity.config import EvmConfig
    from st0x_liquidity.raindex.source import RaindexConfig, RaindexSource

    anvil = dn.start_anvil(extra=["--gas-limit", "300000000"])
    chain = await dn.Chain.connect(anvil.ws_url)
    try:
        devnet = await dn.deploy(chain)
        order = devnet.orders["AAPL"]
        made = 0
        start = time.perf_counter()
        while made < fills:
            n = min(per_tx, fills - made)
            configs = [(order, (made + k) % 2, 1 - (made + k) % 2, []) for k in range(n)]
            ins = [decimal_to_float(Decimal("0.01") if (made + k) % 2 == 0 else Decimal("1.9")) for k in range(n)]
            outs = [decimal_to_float(Decimal("1.91") if (made + k) % 2 == 0 else Decimal("0.01")) for k in range(n)]
            data = dn.calldata("TestOrderBook", "takeOrders", configs, ins, outs)
            await chain.rpc(
                "eth_sendTransaction", [{"from": dn.TAKER, "to": devnet.orderbook, "data": data, "gas": hex(250_000_000)}]
            )
            made += n
        generate_s = time.perf_counter() - start
        evm = EvmConfig(anvil.ws_url, devnet.orderbook, dn.MAKER, devnet.deployment_block)
        source = RaindexSource(RaindexConfig(enrich=False, checkpoint_interval=60.0), evm, None)
        node_time = [0.0]
        request = source._request

        async def timed(method: str, params: list[Any]) -> Any:
            t = time.perf_counter()
            try:
                return await request(method, params)
            finally:
                node_time[0] += time.perf_counter() - t

        source._request = timed  # type: ignore[method-assign]
        collector = Collector(source)
        start = time.perf_counter()
        await collector.wait_for(lambda c: len(c.fills) >= fills, timeout=3600)
        elapsed = time.perf_counter() - start
        await collector.stop()
        assert len({str(i.fill.trade_id) for i in collector.fills}) == fills
    finally:
        await chain.close()
        anvil.stop()
    return {
        "benchmark": "backfill",
        "fills": fills,
        "seconds": round(elapsed, 2),
        "fills_per_second": round(fills / elapsed),
        "node_share": round(node_time[0] / elapsed, 3),
        "bot_share": round(1 - node_time[0] / elapsed, 3),
        "generate_seconds": round(generate_s, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=("decode", "latency", "backfill", "all"))
    parser.add_argument("--logs", type=int, default=50_000)
    parser.add_argument("--fills", type=int)
    parser.add_argument("--no-enrich", action="store_true", help="latency without receipt/trace reads")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.which in ("decode", "all"):
        print(json.dumps(bench_decode(args.logs)), flush=True)
    if args.which in ("latency", "all"):
        print(json.dumps(asyncio.run(bench_latency(args.fills or 500, not args.no_enrich))), flush=True)
    if args.which in ("backfill", "all"):
        print(json.dumps(asyncio.run(bench_backfill(args.fills or 50_000))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rebalancing figures: CPU cost of one snapshot with N symbols, and of one band check.

    .venv/bin/python tools/bench_rebalancing.py [--symbols 50] [--fills 20000]

Builds a real SQLite file with ``--fills`` fills (and their hedges) spread over
the symbols, folds it (the restart rebuild), then times snapshots of both venues
(record + drift events + refresh) and band checks over every asset.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from st0x_liquidity.domain.events import FillRecorded, HedgeClosed, HedgeIntended, position_event
from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.domain.orders import OrderState
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.rebalancing.config import RebalancingConfig
from st0x_liquidity.rebalancing.inventory import USDC, Venue
from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.triggers import decide
from st0x_liquidity.store.sqlite import SqliteStore

T0 = datetime(2026, 1, 2, 15, tzinfo=UTC)


def ticker(i: int) -> str:
    return "S" + "".join(chr(65 + int(d)) for d in f"{i:03d}")


async def seed(path: Path, symbols: int, fills: int) -> None:
    async with SqliteStore(path, synchronous="OFF") as store:
        batch = []
        for n in range(fills):
            sym = Symbol(ticker(n % symbols))
            side = Direction.BUY if n % 3 else Direction.SELL
            fill = Fill(
                TradeId(f"0x{n + 1:064x}", 0), sym, side, Decimal("1.5"), Decimal("100"), n, T0
            )
            cid = f"c{n}"
            batch += [
                position_event(sym, FillRecorded(fill)),
                position_event(
                    sym, HedgeIntended(cid, side.opposite, Decimal("1.5"), Decimal(100), ())
                ),
                position_event(
                    sym,
                    HedgeClosed(
                        cid,
                        side.opposite,
                        OrderState.FILLED,
                        Decimal("1.5"),
                        Decimal("100.1"),
                        None,
                        (),
                        (),
                        (),
                    ),
                ),
            ]
            if len(batch) >= 3000:
                await store.append(batch)
                batch = []
        if batch:
            await store.append(batch)


async def main(symbols: int, fills: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        await seed(path, symbols, fills)
        log = RebalancingLog(path)
        await log.open()
        keeper = InventoryKeeper(log)
        cpu, wall = time.process_time(), time.perf_counter()
        await keeper.refresh()
        print(
            f"rebuild from {fills} fills + {fills} hedges: "
            f"{(time.perf_counter() - wall) * 1000:.0f} ms wall, "
            f"{(time.process_time() - cpu) * 1000:.0f} ms CPU"
        )
        config = RebalancingConfig()
        snap_cpu: list[float] = []
        check_cpu: list[float] = []
        for r in range(rounds):
            offchain = {ticker(i): Decimal(100 + r + i) for i in range(symbols)}
            offchain[USDC] = Decimal(100000 + r)
            onchain = {ticker(i): Decimal(50 + i) for i in range(symbols)}
            cpu = time.process_time()
            await keeper.record_snapshot(Venue.OFFCHAIN, offchain, complete=True)
            await keeper.record_snapshot(
                Venue.ONCHAIN, onchain, complete=False, vaults=onchain, wallets={}
            )
            snap_cpu.append(time.process_time() - cpu)
            cpu = time.process_time()
            now = datetime.now(UTC)
            for asset, inv in keeper.book.assets.items():
                decide(inv, config.rules(asset), now)
            check_cpu.append(time.process_time() - cpu)
        snap_cpu.sort()
        check_cpu.sort()
        print(
            f"snapshot of both venues, {symbols} symbols + USDC (record, drift, refresh): "
            f"median {snap_cpu[len(snap_cpu) // 2] * 1000:.1f} ms CPU, "
            f"max {snap_cpu[-1] * 1000:.1f} ms"
        )
        print(
            f"band check over {len(keeper.book.assets)} assets: "
            f"median {check_cpu[len(check_cpu) // 2] * 1000:.2f} ms CPU"
        )
        await log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--fills", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.symbols, args.fills, args.rounds))

"""A reorg on a real anvil, through the real engine: the vanished fill is reversed with a
recorded ``FillReverted``, its hedge stays, and the next hedge corrects the exposure."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from raindex_chain import make_source
from st0x_testing import raindex_devnet as dn
from support.executors import ScriptedExecutor
from support.harness import make_config, start_engine, stop, wait_for

from st0x_liquidity.audit import audit_report
from st0x_liquidity.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(180)


async def test_reorged_fill_is_reverted_in_the_book_and_its_hedge_corrected(
    tmp_path: Path, anvil: dn.Anvil, chain: dn.Chain
) -> None:
    devnet = await dn.deploy(chain)
    kept = await dn.take(chain, devnet, "AAPL", True, Decimal(1))
    snapshot = await chain.rpc("evm_snapshot", [])
    doomed = await dn.take(chain, devnet, "TSLA", True, Decimal(2))

    config = make_config(tmp_path)
    store = SqliteStore(config.database_path)
    source = make_source(anvil.ws_url, devnet, store, enrich=False)
    executor = ScriptedExecutor()
    engine, store, task = await start_engine(config, executor, source, store)
    try:
        await wait_for(lambda: engine.status.hedges_filled == 2)  # SELL 1 AAPL, SELL 2 TSLA
        assert await chain.rpc("evm_revert", [snapshot])
        await chain.rpc("anvil_mine", ["0x3"])  # the new branch is longer than the old one
        survivor = await dn.take(chain, devnet, "NVDA", True, Decimal(1))

        async def reverted() -> bool:
            rows = await store.fetch("SELECT 1 FROM events WHERE event_type = 'FillReverted'")
            return bool(rows) and engine.status.hedges_filled == 4

        await wait_for(reverted)  # + SELL 1 NVDA, and BUY 2 TSLA to undo the orphaned hedge
        sides = sorted(
            (o.symbol.ticker, o.side.value, o.quantity) for o in executor.orders.values()
        )
        assert sides == [
            ("AAPL", "SELL", Decimal(1)),
            ("NVDA", "SELL", Decimal(1)),
            ("TSLA", "BUY", Decimal(2)),  # the correction
            ("TSLA", "SELL", Decimal(2)),  # the hedge of the vanished fill stays
        ]
        nets = {p.symbol.ticker: p.net for p in await store.positions()}
        assert nets == {"AAPL": 0, "NVDA": 0, "TSLA": 0}

        report = await audit_report(store.reads)
        assert all(f["explained"] for f in report["fills"])
        [correction] = [f for f in report["fills"] if f["corrects"]]
        assert correction["corrects"].startswith(doomed["transactionHash"])
        assert correction["direction"] == "SELL"  # the opposite of the maker's BUY
        recorded = {f["tx_hash"] for f in report["fills"] if not f["corrects"]}
        # the audit trail keeps the reverted fill next to the ones that stand
        assert recorded == {
            kept["transactionHash"],
            doomed["transactionHash"],
            survivor["transactionHash"],
        }
    finally:
        await stop(engine, task, store)

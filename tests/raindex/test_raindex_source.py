"""The raindex source against a real anvil over its real WebSocket JSON-RPC."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from raindex_chain import Collector, RpcProxy, make_source
from st0x_testing import raindex_devnet as dn

from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.raindex.source import ENRICHMENT_NS, RaindexConfig
from st0x_liquidity.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(180)


def fill_map(collector: Collector) -> dict[str, Any]:
    return {str(i.fill.trade_id): i.fill for i in collector.fills}


async def _wallet(chain: dn.Chain, token: str) -> int:
    (units,) = await chain.call("TestERC20", token, "balanceOf", dn.MAKER)
    return int(units)


@pytest.mark.parametrize("layout", ["v5", "v6", "v6-vaultless"])
async def test_take_and_clear_fills_both_sides_and_directions(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore, layout: str
) -> None:
    """The same fills from the V5 and the V6 orderbook, with vaults or vaultless."""
    wallet_before = [await _wallet(chain, t) for t in (devnet.usdc, devnet.equities["AAPL"])]
    sell = await dn.take(chain, devnet, "AAPL", False, Decimal("1.25"))
    buy = await dn.take(chain, devnet, "TSLA", True, Decimal("0.00001"))
    alice = await dn.clear(chain, devnet, "NVDA", True, Decimal("2"), maker_is_alice=True)
    bob = await dn.clear(chain, devnet, "NVDA", False, Decimal("0.5"), maker_is_alice=False)
    collector = Collector(make_source(anvil.ws_url, devnet, store))
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 4)
        fills = [i.fill for i in collector.fills]
        by_tx = {f.trade_id.tx_hash: f for f in fills}
        f = by_tx[sell["transactionHash"]]
        assert (f.symbol.ticker, f.direction, f.amount) == ("AAPL", Direction.SELL, Decimal("1.25"))
        # the taker paid 1.25 × 190.25 × 1.002 USDC, truncated to 6 places
        assert f.price == Decimal("238.288125") / Decimal("1.25") == Decimal("190.6305")
        f = by_tx[buy["transactionHash"]]
        assert (f.symbol.ticker, f.direction, f.amount) == (
            "TSLA",
            Direction.BUY,
            Decimal("0.00001"),
        )
        f = by_tx[alice["transactionHash"]]
        assert (f.symbol.ticker, f.direction, f.amount, f.price) == (
            "NVDA",
            Direction.BUY,
            Decimal(2),
            Decimal("131.4"),
        )
        f = by_tx[bob["transactionHash"]]
        assert (f.direction, f.amount) == (Direction.SELL, Decimal("0.5"))
        # the clear's trade id is the ClearV3 log's index
        clear_logs = [lg for lg in alice["logs"] if lg["address"] == devnet.orderbook]
        assert by_tx[alice["transactionHash"]].trade_id.log_index == int(
            clear_logs[0]["logIndex"], 16
        )
        # symbol/decimals were read from the chain once and cached in the store
        assert (
            await store.get_blob("raindex.tokens", devnet.usdc)
            == b'{"symbol": "USDC", "decimals": 6}'
        )
        tapl = await store.get_blob("raindex.tokens", devnet.equities["AAPL"])
        assert tapl == b'{"symbol": "tAAPL", "decimals": 18}'
        # every fill was enriched off the hot path: gas, block time, the Pyth price the order read
        await asyncio.sleep(1.0)
        record = await store.get_blob(ENRICHMENT_NS, str(by_tx[sell["transactionHash"]].trade_id))
        assert record is not None
        import json

        data = json.loads(record)
        assert data["gas_used"] > 0 and data["effective_gas_price"] > 0
        assert data["pyth"]["price"] == "190.25000000" and data["pyth"]["expo"] == -8
        assert data["pyth"]["feed_id"] == "0x" + dn.feed_id("AAPL").hex()
        # vaultless (V6, vault id 0): the fills moved the maker's wallet, not a vault: USDC
        # +238.288125 (AAPL sale) -0.002416 (TSLA buy) -262.8 (NVDA clear buy) +65.7 (sale)
        wallet = [await _wallet(chain, t) for t in (devnet.usdc, devnet.equities["AAPL"])]
        moved = [after - before for after, before in zip(wallet, wallet_before, strict=True)]
        if devnet.vaultless:
            assert moved == [41_185709, -125 * 10**16]
        else:
            assert moved == [0, 0]
    finally:
        await collector.stop()


async def test_other_owners_ignored_and_recorded_as_skipped(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    # OTHER_MAKER's order taken directly: not ours
    other = dict(devnet.orders)
    devnet.orders = dict(devnet.other_orders)
    theirs = await dn.take(chain, devnet, "AAPL", False, Decimal(1))
    devnet.orders = other
    ours = await dn.take(chain, devnet, "AAPL", True, Decimal(3))
    collector = Collector(make_source(anvil.ws_url, devnet, store))
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 1 and len(c.skipped) >= 1)
        assert [i.fill.trade_id.tx_hash for i in collector.fills] == [ours["transactionHash"]]
        [skip] = collector.skipped
        assert "another owner" in skip.reason and theirs["transactionHash"] in skip.raw
    finally:
        await collector.stop()


async def test_backfill_then_live_without_gap_or_duplicate(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    history = [await dn.take(chain, devnet, "AAPL", i % 2 == 0, Decimal(i + 1)) for i in range(6)]
    collector = Collector(make_source(anvil.ws_url, devnet, store, max_block_range=3))
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 6)
        live = [await dn.take(chain, devnet, "TSLA", i % 2 == 1, Decimal("0.1")) for i in range(4)]
        await collector.wait_for(lambda c: len(c.fills) >= 10)
        await asyncio.sleep(0.6)
        txs = [i.fill.trade_id.tx_hash for i in collector.fills]
        assert txs == [r["transactionHash"] for r in history + live]  # in chain order, once each
        # cursors only move forward and never past an undelivered block
        blocks = [i.cursor["block"] for i in collector.items]
        assert blocks == sorted(blocks)
    finally:
        await collector.stop()


async def test_node_refusing_large_ranges_shrinks_them(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    txs = [
        (await dn.take(chain, devnet, "AAPL", True, Decimal(1)))["transactionHash"]
        for _ in range(5)
    ]
    proxy = RpcProxy(anvil.ws_url)
    await proxy.start()
    proxy.max_log_range = 4
    source = make_source(proxy.ws_url, devnet, store, max_block_range=1000)
    collector = Collector(source)
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 5)
        assert [i.fill.trade_id.tx_hash for i in collector.fills] == txs
        assert source.stats["get_logs_refused"] >= 1
    finally:
        await collector.stop()
        await proxy.stop()


async def test_socket_killed_and_node_restarted_loses_and_doubles_nothing(
    tmp_path: Path, store: SqliteStore
) -> None:
    state = tmp_path / "anvil-state.json"
    port = dn.free_port()
    anvil = dn.start_anvil(port, state_path=state)
    proxy = RpcProxy(anvil.ws_url)
    await proxy.start()
    chain = await dn.Chain.connect(anvil.ws_url)
    devnet = await dn.deploy(chain)
    source = make_source(proxy.ws_url, devnet, store)
    collector = Collector(source)
    expected: list[str] = []
    try:
        for i in range(3):
            expected.append(
                (await dn.take(chain, devnet, "AAPL", True, Decimal(i + 1)))["transactionHash"]
            )
        await collector.wait_for(lambda c: len(c.fills) >= 3)
        # 1) the socket dies mid-stream; fills land while it is down
        await proxy.kill_connections()
        for _i in range(3):
            expected.append(
                (await dn.take(chain, devnet, "TSLA", False, Decimal("0.5")))["transactionHash"]
            )
        await collector.wait_for(lambda c: len(c.fills) >= 6)
        # 2) the node itself restarts with its state (same port)
        await chain.close()
        anvil.stop()
        await asyncio.sleep(0.5)
        anvil = dn.start_anvil(port, state_path=state)
        chain = await dn.Chain.connect(anvil.ws_url)
        for _i in range(3):
            expected.append(
                (await dn.take(chain, devnet, "NVDA", True, Decimal("0.25")))["transactionHash"]
            )
        await collector.wait_for(lambda c: len(c.fills) >= 9, timeout=60)
        await asyncio.sleep(1.0)
        got = [i.fill.trade_id.tx_hash for i in collector.fills]
        assert got == expected
        assert source.stats["reconnects"] >= 2
    finally:
        await collector.stop()
        await proxy.stop()
        await chain.close()
        anvil.stop()


async def test_restart_from_durable_cursor(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    first = [
        (await dn.take(chain, devnet, "AAPL", True, Decimal(1)))["transactionHash"]
        for _ in range(3)
    ]
    collector = Collector(make_source(anvil.ws_url, devnet, store))
    await collector.wait_for(lambda c: len(c.fills) >= 3)
    await collector.stop()
    cursor = collector.last_cursor
    later = [
        (await dn.take(chain, devnet, "AAPL", False, Decimal(2)))["transactionHash"]
        for _ in range(2)
    ]
    resumed = Collector(make_source(anvil.ws_url, devnet, store), cursor)
    try:
        await resumed.wait_for(
            lambda c: len(c.fills) >= 2 and later[-1] in {i.fill.trade_id.tx_hash for i in c.fills}
        )
        seen = {i.fill.trade_id.tx_hash for i in resumed.fills}
        assert set(later) <= seen  # nothing after the cursor is lost
        assert seen <= set(first) | set(
            later
        )  # re-delivery (safety margin) is allowed, deduped by the store
    finally:
        await resumed.stop()


async def test_reorg_reverts_a_fill(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    kept = await dn.take(chain, devnet, "AAPL", True, Decimal(1))
    snapshot = await chain.rpc("evm_snapshot", [])
    doomed = await dn.take(chain, devnet, "AAPL", False, Decimal(7))
    source = make_source(anvil.ws_url, devnet, store)
    collector = Collector(source)
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 2)
        assert await chain.rpc("evm_revert", [snapshot])
        await chain.rpc("anvil_mine", ["0x3"])  # a different branch, longer than the old one
        survivor = await dn.take(chain, devnet, "TSLA", True, Decimal(2))
        await collector.wait_for(
            lambda c: (
                c.reverted
                and survivor["transactionHash"] in {i.fill.trade_id.tx_hash for i in c.fills}
            )
        )
        [revert] = collector.reverted
        assert revert.trade_id.tx_hash == doomed["transactionHash"]
        assert "reorg" in revert.reason and doomed["transactionHash"] in revert.reason
        assert kept["transactionHash"] not in revert.reason
        assert source.stats["reorgs"] >= 1 and source.stats["reverted"] == 1
    finally:
        await collector.stop()


async def test_tracing_unsupported_leaves_pyth_empty(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    proxy = RpcProxy(anvil.ws_url)
    await proxy.start()
    proxy.refuse_methods = {"debug_traceTransaction"}
    receipt = await dn.take(chain, devnet, "AAPL", True, Decimal(1))
    collector = Collector(make_source(proxy.ws_url, devnet, store))
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 1)
        trade_id = str(collector.fills[0].fill.trade_id)
        assert receipt["transactionHash"] in trade_id
        record = None
        for _ in range(50):
            record = await store.get_blob(ENRICHMENT_NS, trade_id)
            if record:
                break
            await asyncio.sleep(0.1)
        import json

        assert record is not None
        data = json.loads(record)
        assert data["pyth"] is None and data["gas_used"] > 0
        assert any("debug_traceTransaction" in e for e in data["errors"])
    finally:
        await collector.stop()
        await proxy.stop()


async def test_stalled_subscription_is_reconnected_and_walk_keeps_going(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    proxy = RpcProxy(anvil.ws_url)
    await proxy.start()
    proxy.drop_notifications = True  # the subscription stays silent
    source = make_source(proxy.ws_url, devnet, store, stall_timeout=0.5, poll_interval=0.2)
    collector = Collector(source)
    try:
        await collector.wait_for(lambda c: c.source.node is not None and c.source.node.alive)
        await asyncio.sleep(0.3)
        tx = (await dn.take(chain, devnet, "AAPL", True, Decimal(1)))["transactionHash"]
        await collector.wait_for(lambda c: len(c.fills) >= 1)  # the poll still walks
        await asyncio.sleep(1.5)
        assert source.stats["reconnects"] >= 1  # the chain moved without a notice: a stall
        reconnects = source.stats["reconnects"]
        await asyncio.sleep(1.5)
        assert source.stats["reconnects"] == reconnects  # a quiet chain is not a stall
        assert [i.fill.trade_id.tx_hash for i in collector.fills] == [tx]
    finally:
        await collector.stop()
        await proxy.stop()


async def test_http_polling_without_websocket(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    tx = (await dn.take(chain, devnet, "AAPL", True, Decimal(1)))["transactionHash"]
    collector = Collector(make_source(anvil.http_url, devnet, store))
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 1)
        tx2 = (await dn.take(chain, devnet, "AAPL", False, Decimal(1)))["transactionHash"]
        await collector.wait_for(lambda c: len(c.fills) >= 2)
        assert [i.fill.trade_id.tx_hash for i in collector.fills] == [tx, tx2]
    finally:
        await collector.stop()


async def test_confirmations_cutoff_waits(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    tx = (await dn.take(chain, devnet, "AAPL", True, Decimal(1)))["transactionHash"]
    collector = Collector(make_source(anvil.ws_url, devnet, store, cutoff=3))
    try:
        await asyncio.sleep(1.0)
        assert not collector.fills
        await chain.rpc("anvil_mine", ["0x3"])
        await collector.wait_for(lambda c: len(c.fills) >= 1)
        assert collector.fills[0].fill.trade_id.tx_hash == tx
    finally:
        await collector.stop()


async def test_malformed_node_answers_do_not_end_the_stream(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    proxy = RpcProxy(anvil.ws_url)
    await proxy.start()
    proxy.garbage = {"eth_getBlockByNumber": 2, "eth_getLogs": 2, "eth_blockNumber": 1}
    txs = [
        (await dn.take(chain, devnet, "AAPL", True, Decimal(1)))["transactionHash"]
        for _ in range(2)
    ]
    source = make_source(proxy.ws_url, devnet, store)
    collector = Collector(source)
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 2)
        assert [i.fill.trade_id.tx_hash for i in collector.fills] == txs
        assert source.stats["reconnects"] >= 1
        assert not collector.task.done()
    finally:
        await collector.stop()
        await proxy.stop()


async def test_finalized_cutoff_follows_the_node_tag(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    tx = (await dn.take(chain, devnet, "AAPL", True, Decimal(1)))["transactionHash"]
    collector = Collector(make_source(anvil.ws_url, devnet, store, cutoff="finalized"))
    try:
        await asyncio.sleep(1.0)
        assert not collector.fills  # anvil's finalized tag trails the head
        await chain.rpc("anvil_mine", ["0x50"])
        await collector.wait_for(lambda c: len(c.fills) >= 1)
        assert collector.fills[0].fill.trade_id.tx_hash == tx
    finally:
        await collector.stop()


def test_cutoff_config_values() -> None:
    assert RaindexConfig(cutoff="SAFE").cutoff == "safe"
    assert RaindexConfig(cutoff="3").cutoff == 3
    assert RaindexConfig(cutoff=0).cutoff == 0
    for bad in ("soon", -1, True, 1.5):
        with pytest.raises(ValueError, match="cutoff must be"):
            RaindexConfig(cutoff=bad)


async def test_caught_up_after_backfill_and_again_after_a_reconnect(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    history = [await dn.take(chain, devnet, "AAPL", True, Decimal(i + 1)) for i in range(4)]
    proxy = RpcProxy(anvil.ws_url)
    await proxy.start()
    # Small ranges: the backfill is many walks' worth; a long backoff keeps the gap visible.
    source = make_source(
        proxy.ws_url, devnet, store, max_block_range=2, backoff_initial=2.0, backoff_max=2.0
    )
    assert source.caught_up is False
    seen: list[bool] = []

    class Recording(Collector):
        async def _run(self, cursor: Any) -> None:
            async for item in self.source.stream(cursor):
                seen.append(self.source.caught_up)
                self.items.append(item)
                self.changed.set()

    collector = Recording(source)

    async def until(expected: bool) -> None:
        async with asyncio.timeout(30):
            while source.caught_up is not expected:
                if collector.task.done():
                    collector.task.result()
                await asyncio.sleep(0.01)

    try:
        await collector.wait_for(lambda c: len(c.fills) >= 4)
        assert seen and not any(seen)  # every backfilled item was handed over while catching up
        await until(True)
        assert [i.fill.trade_id.tx_hash for i in collector.fills] == [
            r["transactionHash"] for r in history
        ]
        await proxy.kill_connections()
        await until(False)  # the socket died: not caught up until the walk reaches the head
        tx = (await dn.take(chain, devnet, "TSLA", False, Decimal(1)))["transactionHash"]
        await until(True)
        await collector.wait_for(lambda c: len(c.fills) >= 5)
        assert collector.fills[-1].fill.trade_id.tx_hash == tx
        assert source.stats["reconnects"] >= 1
    finally:
        await collector.stop()
        await proxy.stop()

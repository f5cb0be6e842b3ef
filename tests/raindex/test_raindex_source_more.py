"""More of the raindex source on a real anvil: the other two clear cases, the token
cache surviving a restart, and enrichment staying off the fill's path."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from raindex_chain import Collector, RpcProxy, make_source
from st0x_testing import raindex_devnet as dn

from st0x_liquidity.backoff import backoff_delay
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.raindex.source import ENRICHMENT_NS, TOKENS_NS
from st0x_liquidity.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(180)


async def test_clears_with_alice_selling_and_bob_buying(
    anvil: dn.Anvil, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    # test_raindex_source covers alice buying and bob selling; these are the other two.
    alice = await dn.clear(chain, devnet, "AAPL", False, Decimal("0.75"), maker_is_alice=True)
    bob = await dn.clear(chain, devnet, "TSLA", True, Decimal("1.5"), maker_is_alice=False)
    collector = Collector(make_source(anvil.ws_url, devnet, store))
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 2)
        by_tx = {i.fill.trade_id.tx_hash: i.fill for i in collector.fills}
        f = by_tx[alice["transactionHash"]]
        assert (f.symbol.ticker, f.direction, f.amount) == ("AAPL", Direction.SELL, Decimal("0.75"))
        assert f.price == devnet.price("AAPL")
        f = by_tx[bob["transactionHash"]]
        assert (f.symbol.ticker, f.direction, f.amount) == ("TSLA", Direction.BUY, Decimal("1.5"))
        assert f.price == devnet.price("TSLA")
        # each fill is keyed by its ClearV3 log, exactly once
        assert len(collector.fills) == 2
    finally:
        await collector.stop()


async def test_token_metadata_is_not_read_again_after_a_restart(
    proxy: RpcProxy, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    await dn.take(chain, devnet, "AAPL", True, Decimal(1))
    await dn.clear(chain, devnet, "NVDA", False, Decimal(2))
    first = Collector(make_source(proxy.ws_url, devnet, store, enrich=False))
    try:
        await first.wait_for(lambda c: len(c.fills) >= 2)
    finally:
        await first.stop()
    # USDC, tAAPL and tNVDA: symbol() and decimals() each, read from the chain once
    assert proxy.requests.count("eth_call") == 6
    assert await store.get_blob(TOKENS_NS, devnet.equities["NVDA"]) is not None

    proxy.requests.clear()
    # A new process (new source, same database) walking the same blocks again.
    second = Collector(make_source(proxy.ws_url, devnet, store, enrich=False))
    try:
        await second.wait_for(lambda c: len(c.fills) >= 2)
        assert [i.fill.symbol.ticker for i in second.fills] == ["AAPL", "NVDA"]
    finally:
        await second.stop()
    assert "eth_getLogs" in proxy.requests  # it did read the chain again ...
    assert "eth_call" not in proxy.requests  # ... but not the tokens: they came from the store


async def test_enrichment_never_holds_up_fills(
    proxy: RpcProxy, chain: dn.Chain, devnet: dn.Devnet, store: SqliteStore
) -> None:
    proxy.hold_methods = {"debug_traceTransaction"}  # the node sits on every trace
    history = [(await dn.take(chain, devnet, "AAPL", True, Decimal(1)))["transactionHash"]]
    collector = Collector(make_source(proxy.ws_url, devnet, store))
    try:
        await collector.wait_for(lambda c: len(c.fills) >= 1)
        for symbol in ("TSLA", "NVDA"):
            history.append(
                (await dn.take(chain, devnet, symbol, False, Decimal(1)))["transactionHash"]
            )
        # live fills keep arriving while the first trace is still unanswered
        await collector.wait_for(lambda c: len(c.fills) >= 3)
        assert [i.fill.trade_id.tx_hash for i in collector.fills] == history
        assert "debug_traceTransaction" in proxy.held
        first = str(collector.fills[0].fill.trade_id)
        assert await store.get_blob(ENRICHMENT_NS, first) is None  # still waiting on the node

        proxy.release()
        records = [await enrichment(store, str(item.fill.trade_id)) for item in collector.fills]
        assert [r["pyth"]["price"] for r in records] == [
            f"{devnet.price(s):.8f}" for s in ("AAPL", "TSLA", "NVDA")
        ]
        assert all(r["gas_used"] > 0 and not r["errors"] for r in records)
    finally:
        await collector.stop()


async def enrichment(store: SqliteStore, trade_id: str) -> dict[str, Any]:
    """The enrichment record of a fill, once the worker has written it (30 s at most)."""
    for _ in range(600):
        blob = await store.get_blob(ENRICHMENT_NS, trade_id)
        if blob is not None:
            record: dict[str, Any] = json.loads(blob)
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"no enrichment record for {trade_id}")


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=0.001, max_value=120),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_reconnect_backoff_is_exponential_and_capped(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    """The source waits ``backoff_delay(failures, backoff_initial, backoff_max)`` before
    reconnecting: growing as base·2^(n-1), never above the cap, never below half the base."""
    delay = backoff_delay(attempt, base, cap, random.Random(seed))
    ceiling = min(cap, base * 2 ** min(attempt - 1, 30))
    assert min(base, ceiling) / 2 <= delay <= ceiling <= cap
    if attempt > 1 and base * 2 ** (attempt - 1) <= cap:
        assert ceiling == base * 2 ** (attempt - 1)  # doubles per failure until the cap

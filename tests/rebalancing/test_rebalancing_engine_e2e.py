"""From a real imbalance (fills through the engine, hedges at the fake Broker API) back to
the band, both directions, with the rebalancer service minting and redeeming on anvil."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from rebalancing_chain import ISSUER, make_env
from st0x_testing.raindex_devnet import calldata
from support.fills import fill
from support.harness import QueueSource, wait_for

from st0x_liquidity.engine import Engine
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.rebalancing.chain import (
    ChainClient,
    JsonRpc,
    erc20_transfer,
    vault_deposit,
    vault_id_bytes,
    vault_withdraw,
)
from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.operations import list_operations
from st0x_liquidity.rebalancing.runtime import onchain_reader
from st0x_liquidity.rebalancing.service import Rebalancer
from st0x_liquidity.registry import ExecutorContext
from st0x_liquidity.store.sqlite import SqliteStore

HEDGING = """
[hedging]
poll_interval = 0.05
poll_jitter = 0.0
failure_backoff = 0.05
failure_backoff_max = 0.1
retry_backoff_max = 0.05
clock_recheck = 0.05
"""


@pytest.mark.asyncio
@pytest.mark.parametrize("layout", ["v5", "v6-vaultless"])
async def test_imbalance_from_fills_is_rebalanced_both_ways(tmp_path: Path, layout: str) -> None:
    """V5 with a vault, and V6 with a vaultless order (the wallet is the inventory)."""
    env = await make_env(tmp_path, toml=HEDGING, snapshot_interval="3600", layout=layout)
    config = env.config()
    section = config.sections["rebalancing"]
    store = SqliteStore(config.database_path)
    await store.open()
    registry = load_registry()
    executor = registry.executors["alpaca-broker-api"].factory(
        config.broker, ExecutorContext(config, store)
    )
    await executor.start()
    source = QueueSource()
    engine = Engine(config, store, executor, source, database_id=store.database_id)
    maker = ChainClient(JsonRpc(env.anvil.http_url), Account.from_key(env.key), 31337)
    log = RebalancingLog(config.database_path)
    await log.open()
    runner = await env.runner(log)
    rebalancer = Rebalancer(config.database_path, section, executor, runner=runner)
    rebalancer.onchain = onchain_reader(runner, rebalancer.keeper.book)
    commits: list[float] = []
    engine.add_listener(lambda _s: commits.append(time.perf_counter()))
    engine.add_listener(lambda _s: rebalancer.wake())
    task = asyncio.create_task(engine.run())
    service: asyncio.Task[None] | None = None

    async def send(to: str, data: str) -> None:
        tx = await maker.prepare(to, data)
        await maker.broadcast(tx)
        await maker.settle(tx)

    vault = vault_id_bytes(env.vault_id)

    async def into_orders(amount: int) -> None:
        """Tokens arrive for the maker's order: into its vault, or (vaultless) its wallet."""
        await env.chain.send(
            ISSUER, env.token, calldata("TestERC20", "mint", env.wallet, amount * 10**18)
        )
        if not env.vaultless:
            data = vault_deposit(env.token, vault, Decimal(amount), env.interface)
            await send(env.orderbook, data)

    async def out_of_orders(amount: int) -> None:
        """Tokens a taker receives from the maker's order: out of its vault or wallet."""
        if env.vaultless:
            await send(env.token, erc20_transfer(ISSUER, amount * 10**18))
        else:
            await send(
                env.orderbook, vault_withdraw(env.token, vault, Decimal(amount), env.interface)
            )

    async def ops() -> list[str]:
        return [f"{o.kind}:{o.status}" for o in await list_operations(log)]

    try:
        # start: 50 tokens in the vault, 50 shares at the broker -> balanced (first snapshot)
        await send(env.token, "0x095ea7b3" + env.orderbook[2:].rjust(64, "0") + "f" * 64)
        await into_orders(50)
        env.fake.positions["AAPL"] = Decimal(50)
        service = asyncio.create_task(rebalancer.run())
        # both first snapshots recorded (onchain last) before the taker moves anything
        await wait_for(lambda: rebalancer.keeper.book.get("AAPL").vault is not None, 20)

        # a taker buys 40 tokens from the maker's order: they leave the vault; the engine
        # hedges by buying 40 shares -> 10 onchain / 90 offchain -> mint 40
        await out_of_orders(40)
        source.push(fill(1, "tAAPL", "SELL", "40", "100"))
        await wait_for(lambda: _ops_done(ops, ["mint:completed"]), 60)
        posted = [
            t for m, p, t in env.fake.requests if m == "POST" and p.endswith("/tokenization/mint")
        ]
        latency = posted[0] - max(c for c in commits if c <= posted[0])
        print(f"last engine commit -> mint POST: {latency * 1000:.1f} ms")
        assert latency < 1.0
        assert await env.onchain() == Decimal(50)
        assert env.fake.positions["AAPL"] == Decimal(50)

        # a taker sells 60 tokens to the maker: they arrive in the vault; the engine hedges
        # by selling 60 shares -> 110 onchain / -10 offchain -> redeem 60
        await into_orders(60)
        source.push(fill(2, "tAAPL", "BUY", "60", "100"))
        await wait_for(lambda: _ops_done(ops, ["mint:completed", "redeem:completed"]), 60)
        assert await env.onchain() == Decimal(50)
        assert env.fake.positions["AAPL"] == Decimal(50)
        book = await InventoryKeeper(log).refresh()
        aapl = book.assets["AAPL"]
        assert aapl.onchain.total == Decimal(50) and aapl.offchain.total == Decimal(50)
        assert not aapl.has_inflight and aapl.active_operation is None
    finally:
        if service is not None:
            service.cancel()
            await asyncio.gather(service, return_exceptions=True)
        engine.request_stop()
        await asyncio.wait_for(task, 20)
        await executor.close()
        await runner.chain.close()
        await runner.custodian.close()
        await maker.close()
        await log.close()
        await store.close()
        await env.close()


async def _ops_done(ops: object, expected: list[str]) -> bool:
    assert callable(ops)
    return bool(await ops() == expected)

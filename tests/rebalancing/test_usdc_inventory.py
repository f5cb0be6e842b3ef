"""The model and the venues' snapshots agree on USDC after every step of both flows.

The broker executor reports ``cash`` = USD + USDC held at the broker (1:1) and the
onchain reader counts the vault, the wallet on Base and the wallet on Ethereum; the
flows' ``Moved`` events must keep the model equal to those, so a snapshot records no
drift. Only while funds are between venues (a broker withdrawal not yet polled, a
burn not yet minted, a mint not yet credited by the broker) may they differ, and
then the snapshot skips USDC anyway (an operation is active).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rebalancing_support import with_database
from usdc_env import UsdcEnv, make_usdc_env

from st0x_liquidity.rebalancing.events import DriftDetected, RebalancingEvent
from st0x_liquidity.rebalancing.inventory import USDC
from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.runtime import onchain_reader
from st0x_liquidity.rebalancing.service import Rebalancer
from st0x_liquidity.rebalancing.state import OperationState
from st0x_liquidity.rebalancing.usdc_runner import UsdcRunner
from st0x_liquidity.store.sqlite import SqliteStore

# (flow, venue) -> steps after which the funds are between venues (not comparable)
IN_TRANSIT = {
    ("usdc_to_onchain", "offchain"): {"broker_withdraw"},
    ("usdc_to_onchain", "onchain"): {"broker_withdraw", "burn", "attest"},
    ("usdc_to_offchain", "offchain"): {"relay"},
    ("usdc_to_offchain", "onchain"): {"burn", "attest"},
}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[UsdcEnv]:
    async with with_database(await make_usdc_env(tmp_path)) as made:
        yield made


class Watched:
    """A runner whose every recorded step is followed by both venues' observations."""

    def __init__(self, runner: UsdcRunner, rebalancer: Rebalancer, log: RebalancingLog) -> None:
        self.seen: list[tuple[str, str, Decimal, Decimal, Decimal, Decimal]] = []
        done = runner._done
        executor = rebalancer.executor
        reader = rebalancer.onchain
        assert executor is not None and reader is not None

        async def watched(
            state: OperationState,
            step: str,
            details: dict[str, str],
            extra: Sequence[RebalancingEvent] = (),
        ) -> None:
            await done(state, step, details, extra)
            inv = (await InventoryKeeper(log).refresh()).get(USDC)
            cash = (await executor.inventory()).cash
            vaults, wallets = await reader()
            onchain = vaults.get(USDC, Decimal(0)) + wallets.get(USDC, Decimal(0))
            self.seen.append(
                (state.kind, step, inv.offchain.total, cash, inv.onchain.total, onchain)
            )

        runner._done = watched  # type: ignore[method-assign]


async def drifts(log: RebalancingLog) -> list[DriftDetected]:
    return [e for _, _, _, e in await log.read(0) if isinstance(e, DriftDetected)]


async def test_every_step_of_both_flows_agrees_with_the_snapshots(env: UsdcEnv) -> None:
    # conversions with slippage and a fee, a withdrawal network fee: amounts differ per leg
    env.fake.conversion_slippage_bps = Decimal(2)
    env.fake.conversion_fee_bps = Decimal(1)
    env.fake.withdrawal_network_fee = Decimal("0.5")
    await env.deposit_to_vault(Decimal(300))
    config = env.config()
    store = SqliteStore(config.database_path)
    await store.open()
    executor: Any = await env.executor(config, store)
    log = RebalancingLog(config.database_path)
    await log.open()
    runner = await env.runner(log)
    rebalancer = Rebalancer(config.database_path, config.sections["rebalancing"], executor)
    rebalancer.onchain = onchain_reader(runner, rebalancer.keeper.book)
    await rebalancer.open()
    watched = Watched(runner, rebalancer, log)
    try:
        await rebalancer.snapshot()  # the baseline: 1000 cash, 300 in the vault
        baseline = await drifts(log)
        assert {(d.venue, d.observed) for d in baseline} == {
            ("offchain", Decimal(1000)),
            ("onchain", Decimal(300)),
        }
        for kind, quantity in (("usdc_to_onchain", "200"), ("usdc_to_offchain", "150")):
            operation_id = await runner.request(kind, USDC, Decimal(quantity), "cli")
            state = await asyncio.wait_for(runner.run(operation_id), 60)
            assert state.status == "completed", state.ended
            await rebalancer.snapshot()  # after the operation: nothing skipped
        steps = {(kind, step) for kind, step, *_ in watched.seen}
        assert len(steps) == 10 + 7  # every step of both flows was observed
        for kind, step, model_off, cash, model_on, onchain in watched.seen:
            if step not in IN_TRANSIT[(kind, "offchain")]:
                assert model_off == cash, (kind, step, model_off, cash)
            if step not in IN_TRANSIT[(kind, "onchain")]:
                assert model_on == onchain, (kind, step, model_on, onchain)
        assert await drifts(log) == baseline  # the snapshots after both flows: no drift
        # USDC held at the broker is in the executor's cash (no double count, none lost)
        assert env.fake.usdc == 0
    finally:
        await rebalancer.log.close()
        await executor.close()
        await runner.close()
        await runner.custodian.close()
        await log.close()
        await store.close()

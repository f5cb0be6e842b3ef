"""USDC rebalancing end to end: two anvil chains with CCTP V2, a fake Iris, the fake Broker API.

From a real imbalance to the band both ways through the Rebalancer; then the awkward
cases: a slow attestation, an expired one, a relay done by someone else first, a
failed broker withdrawal, a destination that refuses the message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from rebalancing_support import with_database
from st0x_testing.cctp_devnet import relay
from st0x_testing.fake_iris import sign_attestation
from st0x_testing.raindex_devnet import TAKER
from support.harness import wait_for
from usdc_env import UsdcEnv, make_usdc_env, run_usdc, usdc_inventory, write_config

from st0x_liquidity.domain.numbers import ZERO
from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.operations import list_operations
from st0x_liquidity.rebalancing.runtime import onchain_reader
from st0x_liquidity.rebalancing.service import Rebalancer
from st0x_liquidity.rebalancing.state import OperationState
from st0x_liquidity.rebalancing.usdc_runner import UsdcRunner
from st0x_liquidity.reporting.rebalancing_cost import read_costs
from st0x_liquidity.store.sqlite import SqliteStore


@pytest.fixture
def layout() -> str:
    return "v5"


@pytest.fixture
async def env(tmp_path: Path, layout: str) -> AsyncIterator[UsdcEnv]:
    async with with_database(await make_usdc_env(tmp_path, layout=layout)) as made:
        yield made


@pytest.mark.parametrize("layout", ["v5", "v6", "v6-vaultless"])
async def test_imbalance_is_rebalanced_both_ways_by_the_rebalancer(env: UsdcEnv) -> None:
    """V5 (deposit3/withdraw3), V6 (deposit4/withdraw4) and V6 vaultless: the USDC "vault"
    is the Base wallet, which the mint fills and the burn spends, with no vault call."""
    write_config(env, rebalancing="snapshot_interval = 0.1\n")
    await env.deposit_to_vault(Decimal(100))  # 100 in the vault, 1000 cash: too little onchain
    config = env.config()
    section = config.sections["rebalancing"]
    store = SqliteStore(config.database_path)
    await store.open()
    executor = await env.executor(config, store)
    log = RebalancingLog(config.database_path)
    await log.open()
    runner = await env.runner(log)
    rebalancer = Rebalancer(config.database_path, section, executor, runner=runner)
    rebalancer.onchain = onchain_reader(runner, rebalancer.keeper.book)
    service = asyncio.create_task(rebalancer.run())

    async def kinds() -> list[str]:
        return [f"{o.kind}:{o.status}" for o in await list_operations(log)]

    try:
        await wait_for(lambda: _equals(kinds, ["usdc_to_onchain:completed"]), 60)
        # 1000 + 100 -> 550 each side; Circle takes 1 bp of the 450 burned
        assert env.fake.cash == Decimal(550)
        assert await env.vault() == Decimal("549.955")
        assert env.fake.usdc == 0

        # the broker's cash is spent elsewhere (hedges bought shares): 549.955 onchain
        # against 100 offchain is far too much onchain now
        env.fake.cash = Decimal(100)
        await wait_for(
            lambda: _equals(kinds, ["usdc_to_onchain:completed", "usdc_to_offchain:completed"]), 60
        )
        # 649.955 in all -> 324.9775 onchain; the rest crossed (less 1.3 bp) and was sold
        assert await env.vault() == Decimal("324.9775")
        burned = Decimal("224.9775")
        fee = (burned * Decimal("1.3") / 10000).quantize(Decimal("0.000001"), "ROUND_CEILING")
        assert env.fake.cash == Decimal(100) + burned - fee
        assert env.fake.usdc == 0
        assert await env.balance(env.eth, env.wallet) == 0
        in_wallet = await env.vault() if env.vaultless else 0
        assert await env.balance(env.base, env.wallet) == in_wallet
        # the model agrees with both venues, nothing in flight
        on, on_flight, off, off_flight = await usdc_inventory(log)
        assert (on, off) == (await env.vault(), env.fake.cash)
        assert on_flight == 0 and off_flight == 0
        counts = await env.counts()
        assert counts["ethereum_burns"] == counts["base_mints"] == 1
        assert counts["base_burns"] == counts["ethereum_mints"] == 1
        assert counts["withdrawals"] == counts["deposits"] == 1
        assert counts["conversions"] == 2
        assert counts["vault_deposits"] == (0 if env.vaultless else 2)
        # what it cost, as the P&L summary shows it: Circle's fees only (the fake's
        # conversions and withdrawals are free here)
        cost = await read_costs(log.reads)
        assert cost.operations == 2
        assert cost.total == Decimal("0.045") + fee == cost.items["cctp"]
    finally:
        service.cancel()
        await asyncio.gather(service, return_exceptions=True)
        await executor.close()
        await runner.close()
        await runner.custodian.close()
        await log.close()
        await store.close()


async def _equals(kinds: object, expected: list[str]) -> bool:
    assert callable(kinds)
    return bool(await kinds() == expected)


async def test_a_slow_attestation_warns_and_still_completes(
    env: UsdcEnv, log: RebalancingLog, caplog: pytest.LogCaptureFixture
) -> None:
    write_config(env, fast_window="0.2")
    env.iris.pending_seconds = 0.6  # attested only after the fast window
    runner = await env.runner(log)
    try:
        with caplog.at_level(logging.WARNING):
            state = await run_usdc(runner, "usdc_to_onchain", "100")
        assert state.status == "completed"
        assert any("slower than a fast transfer" in r.getMessage() for r in caplog.records)
        assert await env.vault() == Decimal("99.99")
    finally:
        await runner.close()
        await runner.custodian.close()


class ThirdPartyFirst(UsdcRunner):
    """Someone else relays our message between the attestation and our relay."""

    async def _step_relay(self, state: OperationState) -> None:
        if "relay" not in state.intended:
            attest = state.done["attest"]
            env: UsdcEnv = self.test_env  # type: ignore[attr-defined]
            await relay(
                env.base.chain,
                env.base.deployment,
                TAKER,
                bytes.fromhex(attest["message"][2:]),
                bytes.fromhex(attest["attestation"][2:]),
            )
        await super()._step_relay(state)


async def test_a_relay_done_by_a_third_party_is_read_from_the_logs(
    env: UsdcEnv, log: RebalancingLog
) -> None:
    base = await env.runner(log)
    runner = ThirdPartyFirst(
        log, base.config, base.chain, base.custodian, eth=base.eth, iris=base.iris
    )
    runner.test_env = env  # type: ignore[attr-defined]
    try:
        state = await run_usdc(runner, "usdc_to_onchain", "100")
        assert state.status == "completed"
        assert state.done["relay"]["relayer"] == TAKER.lower()
        assert "relay" not in state.intended  # we never sent one
        assert await env.vault() == Decimal("99.99")
        assert (await env.counts())["base_mints"] == 1
        assert await usdc_inventory(log) == (Decimal("99.99"), ZERO, Decimal("-100"), ZERO)
    finally:
        await runner.close()
        await runner.custodian.close()


class ExpireFirst(UsdcRunner):
    """The destination chain moves past the attestation's expiration before the relay."""

    mined = False

    async def _step_relay(self, state: OperationState) -> None:
        if not self.mined:
            self.mined = True
            await self.chain.rpc("anvil_mine", ["0x10"])
        await super()._step_relay(state)


class ExpireWhileSending(UsdcRunner):
    """The attestation expires between our expiry check and the relay transaction."""

    mined = False

    async def _transaction(self, state: OperationState, step: str, *a: Any, **k: Any) -> Any:
        if step == "relay" and not self.mined:
            self.mined = True
            await self.chain.rpc("anvil_mine", ["0x10"])
        return await super()._transaction(state, step, *a, **k)


@pytest.mark.parametrize("runner_class", [ExpireFirst, ExpireWhileSending])
async def test_an_expired_attestation_is_reattested_not_failed(
    env: UsdcEnv, log: RebalancingLog, runner_class: type[UsdcRunner]
) -> None:
    env.iris.expiration_window = 8
    base = await env.runner(log)
    runner = runner_class(
        log, base.config, base.chain, base.custodian, eth=base.eth, iris=base.iris
    )
    try:
        state = await run_usdc(runner, "usdc_to_onchain", "100")
        assert state.status == "completed", state.ended
        assert state.done["attest"].get("reattested") == "1"
        assert (await env.counts())["base_mints"] == 1
        assert any("/v2/reattest/" in p for p in env.iris.paths)
    finally:
        await runner.close()
        await runner.custodian.close()


async def test_a_failed_broker_withdrawal_sells_the_usdc_back_and_ends_failed(
    env: UsdcEnv, log: RebalancingLog
) -> None:
    env.fake.fail_withdrawals = True
    runner = await env.runner(log)
    try:
        state = await run_usdc(runner, "usdc_to_onchain", "100")
        assert state.status == "failed"
        assert state.ended is not None and state.ended.reason is not None
        assert "FAILED" in state.ended.reason and "sold back" in state.ended.reason
        assert env.fake.cash == Decimal(1000) and env.fake.usdc == 0
        assert (await env.counts())["ethereum_burns"] == 0
        # the cash is back where it was, nothing in flight, the next decision may act
        assert await usdc_inventory(log) == (ZERO, ZERO, ZERO, ZERO)
        assert (await InventoryKeeper(log).refresh()).get("USDC").active_operation is None
    finally:
        await runner.close()
        await runner.custodian.close()


async def test_a_destination_that_refuses_the_message_leaves_the_funds_visible_in_limbo(
    env: UsdcEnv, log: RebalancingLog, caplog: pytest.LogCaptureFixture
) -> None:
    env.iris.attester_keys = ["0x" + bytes(Account.create().key).hex()]  # not Base's attester
    runner = await env.runner(log)
    try:
        with caplog.at_level(logging.ERROR):
            state = await run_usdc(runner, "usdc_to_onchain", "100")
        assert state.status == "failed"
        assert state.ended is not None and state.ended.reason is not None
        assert "Invalid signature" in state.ended.reason and "limbo" in state.ended.reason
        assert any("ALERT" in r.getMessage() for r in caplog.records)
        # the cash left the broker, the USDC was burned on Ethereum and never minted on Base
        assert env.fake.cash == Decimal(900)
        assert await env.balance(env.eth, env.wallet) == 0
        assert await env.vault() == 0
        assert await usdc_inventory(log) == (ZERO, Decimal(100), Decimal(-100), ZERO)
        assert await runner.land_all() == []  # still not minted

        # later someone relays it with a valid attestation: the funds land, visibly
        message = bytes.fromhex(state.done["attest"]["message"][2:])
        signed = sign_attestation(message, [env.pair.attester_key])
        await relay(env.base.chain, env.base.deployment, TAKER, message, signed)
        assert await runner.land_all() == [state.operation_id]
        assert await env.balance(env.base, env.wallet) == Decimal("99.99")
        assert await usdc_inventory(log) == (Decimal("99.99"), ZERO, Decimal(-100), ZERO)
        assert (await read_costs(log.reads)).total == Decimal("0.01")
        assert await runner.land_all() == []  # once
    finally:
        await runner.close()
        await runner.custodian.close()


async def test_usdc_to_offchain_refused_below_the_fee_cap_and_withdrawal_minimum(
    env: UsdcEnv, log: RebalancingLog
) -> None:
    runner = await env.runner(log)
    try:
        with pytest.raises(ValueError, match="too small"):
            await runner.request("usdc_to_offchain", "USDC", Decimal("0.000001"), "cli")
        with pytest.raises(ValueError, match="minimum withdrawal"):
            await runner.request("usdc_to_onchain", "USDC", Decimal("9.99"), "cli")
        assert await list_operations(log) == []
    finally:
        await runner.close()
        await runner.custodian.close()


async def test_a_fee_above_the_ceiling_refuses_the_burn_and_the_usdc_stays_on_ethereum(
    env: UsdcEnv, log: RebalancingLog
) -> None:
    env.iris.fees[(0, 6)] = {1000: Decimal(10), 2000: Decimal(0)}  # 10 bp > max_fee_bps 5
    runner = await env.runner(log)
    try:
        state = await run_usdc(runner, "usdc_to_onchain", "100")
        assert state.status == "failed"
        assert state.ended is not None and state.ended.reason is not None
        assert "above max_fee_bps" in state.ended.reason
        assert "wallet on Ethereum" in state.ended.reason
        assert (await env.counts())["ethereum_burns"] == 0
        assert await env.balance(env.eth, env.wallet) == Decimal(100)
        assert await usdc_inventory(log) == (Decimal(100), ZERO, Decimal(-100), ZERO)
        # the onchain snapshot counts the wallet on Ethereum: no false drift
        book = await InventoryKeeper(log).refresh()
        vaults, wallets = await onchain_reader(runner, book)()
        assert vaults["USDC"] == 0 and wallets["USDC"] == Decimal(100)
    finally:
        await runner.close()
        await runner.custodian.close()


async def test_iris_down_for_a_while_is_waited_out(env: UsdcEnv, log: RebalancingLog) -> None:
    env.iris.down = True
    runner = await env.runner(log)
    try:
        operation_id = await runner.request("usdc_to_onchain", "USDC", Decimal(100), "cli")
        task = asyncio.create_task(runner.run(operation_id))
        await wait_for(lambda: env.iris.requests >= 3, 30)  # answered 503 with backoff
        assert not task.done()
        env.iris.down = False
        state = await asyncio.wait_for(task, 60)
        assert state.status == "completed"
        assert await env.vault() == Decimal("99.99")
    finally:
        await runner.close()
        await runner.custodian.close()

"""SIGKILL a real CLI process after every step of each USDC flow, resume: nothing doubled.

One environment (two anvils, fake Iris, fake Broker API) serves every crash point of
the module, so each point costs one CLI process; the resume runs in the test process.
Each operation must end completed with exactly one conversion, one withdrawal or
deposit at the broker, one burn, one mint and one vault move, and the inventory
model must follow the venues exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from rebalancing_support import rebalance_cli, with_database
from usdc_env import UsdcEnv, make_usdc_env

from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.operations import list_operations
from st0x_liquidity.rebalancing.state import TO_OFFCHAIN_STEPS, TO_ONCHAIN_STEPS

pytestmark = pytest.mark.asyncio(loop_scope="module")

ONCHAIN_POINTS = [
    "convert:intended",
    "broker_withdraw:intended",
    "burn:intended",
    "relay:intended",
    *(f"{step}:effect" for step in TO_ONCHAIN_STEPS),
]
OFFCHAIN_POINTS = [
    "vault_withdraw:intended",
    "burn:intended",
    "relay:intended",
    "convert:intended",
    *(f"{step}:effect" for step in TO_OFFCHAIN_STEPS),
]
AMOUNT = Decimal(20)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[UsdcEnv]:
    tmp: Path = tmp_path_factory.mktemp("usdc-crash")
    made = await make_usdc_env(tmp, cash=Decimal(10_000))
    await made.deposit_to_vault(Decimal(10_000))
    async with with_database(made):
        yield made


async def crash_and_resume(env: UsdcEnv, command: str, point: str) -> dict[str, int]:
    """Run ``command`` killed at ``point``, resume it here; the change in every count."""
    before = await env.counts()
    code, output = await rebalance_cli(env, command, str(AMOUNT), crash=point)
    assert code == -9, output
    log = RebalancingLog(env.tmp / "st0x.db")
    await log.open()
    runner = await env.runner(log)
    try:
        open_ops = [s for s in await list_operations(log) if s.ended is None]
        assert len(open_ops) == 1
        final = await asyncio.wait_for(runner.run(open_ops[0].operation_id), 60)
        assert final.status == "completed", final.ended
        assert all(o.ended is not None for o in await list_operations(log))
        inv = (await InventoryKeeper(log).refresh()).get("USDC")
        assert inv.active_operation is None and not inv.has_inflight
    finally:
        await runner.close()
        await runner.custodian.close()
        await log.close()
    after = await env.counts()
    return {k: after[k] - before[k] for k in after}


async def model(env: UsdcEnv) -> tuple[Decimal, Decimal]:
    log = RebalancingLog(env.tmp / "st0x.db")
    await log.open()
    try:
        inv = (await InventoryKeeper(log).refresh()).get("USDC")
        return inv.onchain.total, inv.offchain.total
    finally:
        await log.close()


@pytest.mark.parametrize("point", ONCHAIN_POINTS)
async def test_usdc_to_onchain_killed_at_each_step_resumes_once(env: UsdcEnv, point: str) -> None:
    vault, cash, (on, off) = await env.vault(), env.fake.cash, await model(env)
    delta = await crash_and_resume(env, "usdc-to-onchain", point)
    assert delta == {
        "ethereum_burns": 1,
        "ethereum_mints": 0,
        "base_burns": 0,
        "base_mints": 1,
        "vault_deposits": 1,
        "conversions": 1,
        "withdrawals": 1,
        "deposits": 0,
    }
    minted = AMOUNT - Decimal("0.002")  # Circle's 1 bp from Ethereum
    assert await env.vault() == vault + minted
    assert env.fake.cash == cash - AMOUNT and env.fake.usdc == 0
    assert await env.balance(env.eth, env.wallet) == 0
    assert await env.balance(env.base, env.wallet) == 0
    assert await model(env) == (on + minted, off - AMOUNT)


@pytest.mark.parametrize("point", OFFCHAIN_POINTS)
async def test_usdc_to_offchain_killed_at_each_step_resumes_once(env: UsdcEnv, point: str) -> None:
    vault, cash, (on, off) = await env.vault(), env.fake.cash, await model(env)
    delta = await crash_and_resume(env, "usdc-to-offchain", point)
    assert delta == {
        "ethereum_burns": 0,
        "ethereum_mints": 1,
        "base_burns": 1,
        "base_mints": 0,
        "vault_deposits": 0,
        "conversions": 1,
        "withdrawals": 0,
        "deposits": 1,
    }
    landed = AMOUNT - Decimal("0.0026")  # Circle's 1.3 bp from Base
    assert await env.vault() == vault - AMOUNT
    assert env.fake.cash == cash + landed and env.fake.usdc == 0
    assert await env.balance(env.base, env.wallet) == 0
    assert await model(env) == (on - AMOUNT, off + landed)


@pytest.mark.parametrize("point", ["unwind:intended", "unwind:effect"])
async def test_selling_back_after_a_failed_withdrawal_killed_resumes_once(
    env: UsdcEnv, point: str
) -> None:
    cash, model_before, before = env.fake.cash, await model(env), await env.counts()
    env.fake.fail_withdrawals = True
    try:
        code, output = await rebalance_cli(env, "usdc-to-onchain", str(AMOUNT), crash=point)
        assert code == -9, output
        log = RebalancingLog(env.tmp / "st0x.db")
        await log.open()
        runner = await env.runner(log)
        try:
            (open_op,) = [s for s in await list_operations(log) if s.ended is None]
            final = await asyncio.wait_for(runner.run(open_op.operation_id), 60)
        finally:
            await runner.close()
            await runner.custodian.close()
            await log.close()
    finally:
        env.fake.fail_withdrawals = False
    assert final.status == "failed" and "unwind" in final.done
    after = await env.counts()
    assert after["conversions"] - before["conversions"] == 2  # the buy and one sale back
    assert after["withdrawals"] - before["withdrawals"] == 1
    assert after["ethereum_burns"] == before["ethereum_burns"]
    assert env.fake.cash == cash and env.fake.usdc == 0
    assert await model(env) == model_before

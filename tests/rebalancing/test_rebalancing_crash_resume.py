"""SIGKILL after every step of each flow (in a real CLI process), resume, nothing doubled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from rebalancing_chain import REDEMPTION_WALLET, Env, make_env
from rebalancing_support import rebalance_cli, with_database

from st0x_liquidity.rebalancing.chain import DEPOSIT_V2_TOPIC, WITHDRAW_V2_TOPIC
from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.operations import list_operations

MINT_POINTS = [
    "mint_request:intended",
    "mint_request:effect",
    "mint_request:done",
    "mint_poll:effect",
    "mint_poll:done",
    "approve:intended",
    "approve:effect",
    "approve:done",
    "deposit:intended",
    "deposit:effect",
]
REDEEM_POINTS = [
    "withdraw:intended",
    "withdraw:effect",
    "withdraw:done",
    "transfer:intended",
    "transfer:effect",
    "transfer:done",
    "detect:effect",
    "detect:done",
    "redeem_poll:effect",
]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with with_database(await make_env(tmp_path)) as made:
        yield made


async def inventory(env: Env) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    log = RebalancingLog(env.tmp / "st0x.db")
    await log.open()
    try:
        aapl = (await InventoryKeeper(log).refresh()).assets["AAPL"]
        assert aapl.active_operation is None
        ops = await list_operations(log)
        assert [o.status for o in ops] == ["completed"] * len(ops)
        return (
            aapl.onchain.available,
            aapl.onchain.inflight,
            aapl.offchain.available,
            aapl.offchain.inflight,
        )
    finally:
        await log.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("point", MINT_POINTS)
async def test_mint_killed_at_each_step_resumes_once(env: Env, point: str) -> None:
    code, output = await rebalance_cli(env, "mint", "AAPL", "5", crash=point)
    assert code == -9, output
    code, output = await rebalance_cli(env, "resume")
    assert code == 0, output
    assert "completed" in output
    mints = [r for r in env.fake.tokenization.values() if r["type"] == "mint"]
    assert len(mints) == 1
    assert len(await env.logs(DEPOSIT_V2_TOPIC, env.orderbook)) == 1
    assert await env.vault() == Decimal(5)
    assert await env.balance(env.wallet) == 0
    assert env.fake.positions["AAPL"] == Decimal(95)
    assert await inventory(env) == (Decimal(5), 0, Decimal(-5), 0)


@pytest.mark.asyncio
@pytest.mark.parametrize("point", REDEEM_POINTS)
async def test_redemption_killed_at_each_step_resumes_once(env: Env, point: str) -> None:
    code, output = await rebalance_cli(env, "mint", "AAPL", "5")
    assert code == 0, output
    code, output = await rebalance_cli(env, "redeem", "AAPL", "2", crash=point)
    assert code == -9, output
    code, output = await rebalance_cli(env, "resume")
    assert code == 0, output
    assert len(await env.logs(WITHDRAW_V2_TOPIC, env.orderbook)) == 1
    assert await env.balance(REDEMPTION_WALLET) == Decimal(2)
    redeems = [r for r in env.fake.tokenization.values() if r["type"] == "redeem"]
    assert len(redeems) == 1 and redeems[0]["status"] == "completed"
    assert await env.vault() == Decimal(3)
    assert env.fake.positions["AAPL"] == Decimal(97)
    assert await inventory(env) == (Decimal(3), 0, Decimal(-3), 0)

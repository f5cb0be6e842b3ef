"""`rebalance status|mint --no-run|abandon|retry` in real processes over the same database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from rebalancing_chain import Env, make_env
from rebalancing_support import rebalance_cli, with_database

from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with with_database(await make_env(tmp_path)) as made:
        yield made


@pytest.mark.asyncio
async def test_record_abandon_retry(env: Env) -> None:
    code, out = await rebalance_cli(env, "status")
    assert code == 0 and "no rebalancing operations yet" in out
    code, out = await rebalance_cli(env, "mint", "AAPL", "3", "--no-run")
    assert code == 0, out
    op = out.split()[0]
    code, out = await rebalance_cli(env, "--json", "status")
    rows = json.loads(out[: out.rindex("]") + 1])  # stdout, then any stderr
    assert [(r["operation_id"], r["status"]) for r in rows] == [(op, "mint_request:next")]
    code, out = await rebalance_cli(env, "mint", "AAPL", "1")
    assert code == 1 and "already has operation" in out
    code, out = await rebalance_cli(env, "abandon", op, "--reason", "changed my mind")
    assert code == 0, out
    log = RebalancingLog(env.tmp / "st0x.db")
    await log.open()
    aapl = (await InventoryKeeper(log).refresh()).assets["AAPL"]
    assert (aapl.offchain.available, aapl.offchain.inflight) == (0, 0)
    await log.close()
    assert not env.fake.tokenization  # nothing was ever sent
    code, out = await rebalance_cli(env, "retry", op)
    assert code == 0, out
    assert "completed" in out
    assert await env.vault() == Decimal(3)
    code, out = await rebalance_cli(env, "status")
    assert "abandoned" in out and "(changed my mind)" in out and "completed" in out

"""The bot's wiring: ``[rebalancing]`` + ``alpaca-broker-api`` -> the service from the hook
snapshots both venues, sees 0 onchain / 100 at the broker and mints back into the band."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from pathlib import Path

import pytest
from rebalancing_chain import KEY_ENV, make_env
from support.harness import wait_for

from st0x_liquidity.app import build_app
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.rebalancing import plugin
from st0x_liquidity.rebalancing.operations import list_operations
from st0x_liquidity.store.sqlite import SqliteStore


@pytest.mark.asyncio
async def test_service_from_the_hook_mints_into_the_band(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = await make_env(tmp_path)
    monkeypatch.setenv(KEY_ENV, env.key)
    config = env.config()
    store = SqliteStore(config.database_path)
    await store.open()
    app = await build_app(config, load_registry(), store)
    await app.executor.start()
    services = plugin.st0x_app_services(app)
    assert services is not None
    service = asyncio.create_task(services[0]())
    rebalancer = app.extras["rebalancer"]
    try:

        async def minted() -> bool:
            if not rebalancer.log.is_open:
                return False
            ops = await list_operations(rebalancer.log)
            return [o.status for o in ops] == ["completed"]

        await wait_for(minted, 60)
        # 100 shares at the broker, 0 onchain, target 0.5 -> mint 50 into the pinned vault
        assert await env.vault() == Decimal(50)
        assert env.fake.positions["AAPL"] == Decimal(50)
        assert os.environ[KEY_ENV] not in str(rebalancer.runner.chain.__dict__)
    finally:
        service.cancel()
        await asyncio.gather(service, return_exceptions=True)
        if rebalancer.runner is not None:
            await rebalancer.runner.chain.close()
            await rebalancer.runner.custodian.close()
        await app.executor.close()
        await store.close()
        await env.close()

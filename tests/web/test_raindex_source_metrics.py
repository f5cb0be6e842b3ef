"""The fill-source facts of the dashboard and /metrics with the real raindex source.

The replay source has no blocks and no WebSocket, so the other dashboard tests
cannot show them: here the bot follows a devnet on anvil through a JSON-RPC
proxy that can drop its socket, and the page's source status and the
``st0x_source_last_block`` / ``st0x_source_lag_seconds`` /
``st0x_source_ws_reconnects_total`` samples follow the chain and the reconnect.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dashboard_support import running_app, wait_until
from st0x_testing import raindex_devnet as dn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "raindex"))
from raindex_chain import RpcProxy  # type: ignore[import-not-found]  # tests/raindex

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DEADLINE = 60.0


@pytest.fixture
async def chain_behind_proxy() -> AsyncIterator[tuple[dn.Chain, dn.Devnet, RpcProxy]]:
    anvil = dn.start_anvil()
    proxy = RpcProxy(anvil.ws_url)
    await proxy.start()
    chain = await dn.Chain.connect(anvil.ws_url)
    try:
        devnet = await dn.deploy(chain)
        yield chain, devnet, proxy
    finally:
        await chain.close()
        await proxy.stop()
        anvil.stop()


def block_of(receipt: dict[str, Any]) -> int:
    value = receipt["blockNumber"]
    return int(value, 16) if isinstance(value, str) else int(value)


def sample(metrics: str, name: str) -> float | None:
    prefix = name + '{source="raindex"} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


async def test_last_block_lag_and_reconnects_follow_the_chain(
    tmp_path: Path, chain_behind_proxy: tuple[dn.Chain, dn.Devnet, RpcProxy]
) -> None:
    chain, devnet, proxy = chain_behind_proxy
    config = tmp_path / "st0x.toml"
    config.write_text(
        dn.config_toml(devnet, proxy.ws_url, "st0x.db", dashboard_port=0)
        + "status_interval = 0.2\n"
    )
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:

        async def scrape() -> tuple[dict[str, Any], str]:
            async with http.get(url + "/api/state") as r:
                state = await r.json()
            async with http.get(url + "/metrics") as r:
                return state["status"]["source"], await r.text()

        first = block_of(await dn.take(chain, devnet, "AAPL", True, Decimal("1.5")))

        async def read_past(block: int, fills: int) -> bool:
            source, text = await scrape()
            metric = sample(text, "st0x_source_last_block")
            return (
                app.engine.status.fills_ingested == fills
                and source["last_block"] is not None
                and source["last_block"] >= block
                and metric is not None
                and metric >= block
            )

        await wait_until(lambda: read_past(first, 1), DEADLINE)
        source, text = await scrape()
        assert source["name"] == "raindex" and source["state"] == "running"
        assert source["last_fill_at"] is not None and source["stalled"] is None
        lag = sample(text, "st0x_source_lag_seconds")
        assert lag is not None and lag >= 0  # now − block time of the newest fill
        assert sample(text, "st0x_source_ws_reconnects_total") == 0.0
        assert sample(text, "st0x_source_up") == 1.0

        # The node's socket dies: the source reconnects, and the counter says so.
        await proxy.kill_connections()

        async def reconnected() -> bool:
            _source, text = await scrape()
            count = sample(text, "st0x_source_ws_reconnects_total")
            return count is not None and count >= 1

        await wait_until(reconnected, DEADLINE)
        _source, text = await scrape()
        assert 'st0x_source_stats_total{kind="reconnects",source="raindex"}' in text

        # Blocks keep flowing after the reconnect.
        second = block_of(await dn.take(chain, devnet, "AAPL", False, Decimal("1.5")))
        assert second > first
        await wait_until(lambda: read_past(second, 2), DEADLINE)

"""The dashboard on PostgreSQL: /health, /metrics, /api/state and the breaker, whose
pause is a row of the shared database (a standby on another machine sees it)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from dashboard_support import TOKEN, append, fill_line, running_app, wait_until, write_config

from st0x_liquidity.store.breaker_log import BreakerLog


async def test_health_metrics_state_and_the_breaker_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path, database_url=postgres_url)
    append(
        fills,
        fill_line(1, "tAAPL", "SELL", "3", "190"),
        fill_line(2, "tTSLA", "BUY", "0.001", "240"),
    )
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await wait_until(lambda: app.engine.status.hedges_filled >= 1)
        await wait_until(lambda: app.engine.status.market_checked_at is not None)
        async with http.get(url + "/health") as r:
            body = await r.json()
            assert r.status == 200, body
            assert body["checks"]["store"]["ok"] is True

        async def scrape() -> str:
            async with http.get(url + "/metrics") as r:
                assert r.status == 200
                return await r.text()

        async def settled() -> bool:
            return 'st0x_hedges_filled_total{broker="dry-run"} 1.0' in await scrape()

        await wait_until(settled)
        text = await scrape()
        assert 'st0x_fills_ingested_total{source="replay"} 2.0' in text
        assert 'st0x_net_position_shares{symbol="TSLA"} 0.001' in text
        assert "st0x_store_up 1.0" in text
        async with http.get(url + "/api/state") as r:
            assert r.status == 200
            state = await r.json()
        assert sorted(f["amount"] for f in state["fills"]) == ["0.001", "3"]
        assert {p["symbol"] for p in state["positions"]} == {"AAPL", "TSLA"}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = {"action": "pause", "reason": "database maintenance"}
        async with http.post(url + "/api/breaker", json=body, headers=auth) as r:
            assert r.status == 200, await r.text()
        assert app.engine.status.paused == "database maintenance"
        rows = await app.store.fetch("SELECT action, reason FROM circuit_breaker_log")
        assert rows == [("pause", "database maintenance")]
    # The pause is in the database, not a local file: any machine's restart keeps it.
    change = BreakerLog(postgres_url).last_change()
    assert change is not None and change.action == "pause"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fills.jsonl", "st0x.toml"]  # noqa: ASYNC240
    async with running_app(config) as (app, _url):
        assert app.engine.status.paused == "database maintenance"

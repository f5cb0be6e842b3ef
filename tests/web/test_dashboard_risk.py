"""Blocked hedges and trading states on the dashboard: status, alerts, metrics, the endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from dashboard_support import TOKEN, append, fill_line, running_app, wait_until, write_config


async def test_a_blocked_hedge_shows_everywhere_and_states_are_set_with_the_token(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text() + '[risk]\nmax_order_quantity = "5"\n')
    append(tmp_path / "fills.jsonl", fill_line(1, "tAAPL", "BUY", "7", "100"))
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await wait_until(lambda: "AAPL" in app.engine.status.blocked)
        async with http.get(url + "/api/state") as r:
            state = await r.json()
        [blocked] = state["status"]["risk"]["blocked"]
        assert (blocked["symbol"], blocked["side"], blocked["quantity"], blocked["limit"]) == (
            "AAPL",
            "SELL",
            "7",
            "max_order_quantity",
        )
        [alert] = [a for a in state["alerts"] if a["kind"] == "hedge_blocked"]
        assert alert["severity"] == "critical"
        assert "above max_order_quantity 5" in alert["message"]
        async with http.get(url + "/metrics") as r:
            metrics = await r.text()
        assert 'st0x_hedge_blocked{limit="max_order_quantity",symbol="AAPL"} 1.0' in metrics
        assert 'st0x_alerts{kind="hedge_blocked"} 1.0' in metrics
        assert 'st0x_trading_state{state="active",symbol="*"} 1.0' in metrics
        assert await app.store.fetch("SELECT * FROM hedge_orders") == []

        body = {"action": "set-state", "symbol": "tAAPL", "state": "halted", "reason": "check"}
        async with http.post(url + "/api/breaker", json=body) as r:
            assert r.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        bad = {**body, "state": "frozen"}
        async with http.post(url + "/api/breaker", json=bad, headers=auth) as r:
            assert r.status == 400
        async with http.post(url + "/api/breaker", json=body, headers=auth) as r:
            assert r.status == 200
            answer = await r.json()
        assert answer["states"]["AAPL"] == {"state": "halted", "reason": "check"}
        await wait_until(lambda: app.engine.status.blocked["AAPL"]["limit"] == "state")
        events = await app.store.fetch(
            "SELECT aggregate_id, payload FROM events WHERE event_type = 'TradingStateChanged'"
        )
        assert [(agg, json.loads(p)["actor"]) for agg, p in events] == [("AAPL", "dashboard")]
        async with http.get(url + "/metrics") as r:
            assert 'st0x_trading_state{state="halted",symbol="AAPL"} 1.0' in await r.text()

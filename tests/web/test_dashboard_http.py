"""The dashboard's HTTP side against the real app: WebSocket protocol, breaker, health, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from dashboard_support import TOKEN, append, fill_line, running_app, wait_until, write_config

from st0x_liquidity.web.state import ALERT_KINDS


async def test_websocket_initial_then_increments(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path)
    append(fills, fill_line(1, "tAAPL", "BUY", "0.5", "190"))
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:

        async def recorded() -> bool:
            return bool(await app.store.fetch("SELECT 1 FROM onchain_trades"))

        await wait_until(recorded)
        async with http.ws_connect(url + "/api/ws") as ws:
            first = json.loads((await ws.receive()).data)
            assert first["type"] == "initial"
            data = first["data"]
            assert set(data) >= {
                "positions",
                "fills",
                "hedges",
                "pnl",
                "latency",
                "status",
                "alerts",
                "health",
            }
            assert [f["trade_id"] for f in data["fills"]] == [f"0x{1:064x}:0"]
            assert data["fills"][0]["amount"] == "0.5"  # decimals are strings
            assert data["status"]["breaker"]["status"] == "active"
            assert data["status"]["source"]["state"] == "running"
            append(fills, fill_line(2, "tAAPL", "BUY", "0.25", "191"))
            seen: dict[str, list[dict]] = {}  # type: ignore[type-arg]
            while not any(
                f["data"]["trade_id"].startswith(f"0x{2:064x}") for f in seen.get("fill", [])
            ):
                msg = json.loads((await ws.receive(timeout=30)).data)
                seen.setdefault(msg["type"], []).append(msg)
            assert all(m["seq"] > 0 for m in seen["fill"])
            # The position message carries the unhedged exposure.
            while "position" not in seen:
                msg = json.loads((await ws.receive(timeout=30)).data)
                seen.setdefault(msg["type"], []).append(msg)
            assert seen["position"][-1]["data"]["symbol"] == "AAPL"


async def test_breaker_requires_the_token_and_is_audited(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        body = {"action": "pause", "reason": "maintenance"}
        async with http.post(url + "/api/breaker", json=body) as r:
            assert r.status == 401
        async with http.post(
            url + "/api/breaker", json=body, headers={"Authorization": "Bearer wrong"}
        ) as r:
            assert r.status == 401
        assert app.engine.status.paused is None
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(url + "/api/breaker", json={"action": "nope"}, headers=auth) as r:
            assert r.status == 400
        async with http.post(url + "/api/breaker", json=body, headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["status"] == "paused"
        assert app.engine.status.paused == "maintenance"
        async with http.post(url + "/api/breaker", json={"action": "resume"}, headers=auth) as r:
            assert (await r.json())["status"] == "active"
        assert app.engine.status.paused is None
        log = await app.store.fetch(
            "SELECT action, reason, actor FROM circuit_breaker_log ORDER BY id"
        )
        assert [row[0] for row in log] == ["pause", "resume"]
        assert log[0][1:] == ("maintenance", "dashboard")
        # Every change is an event in the audit trail (the event log).
        events = await app.store.fetch(
            "SELECT aggregate_type, aggregate_id, event_type, payload FROM events "
            "WHERE event_type = 'CircuitBreakerChanged' ORDER BY rowid"
        )
        assert [row[:3] for row in events] == [
            ("CircuitBreaker", "hedging", "CircuitBreakerChanged")
        ] * 2
        payloads = [json.loads(row[3]) for row in events]
        assert [(p["paused"], p["actor"]) for p in payloads] == [
            (True, "dashboard"),
            (False, "dashboard"),
        ]
        assert payloads[0]["reason"] == "maintenance"
        with_pause = {"action": "pause", "reason": "kept across restarts"}
        async with http.post(url + "/api/breaker", json=with_pause, headers=auth) as r:
            assert r.status == 200
    # A restart keeps the breaker open.
    async with running_app(config) as (app, url):
        assert app.engine.status.paused == "kept across restarts"


async def test_breaker_is_read_only_without_a_token(tmp_path: Path) -> None:
    config = write_config(tmp_path, token=None)
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        async with http.post(url + "/api/breaker", json={"action": "pause"}) as r:
            assert r.status == 403
        assert app.engine.status.paused is None


async def test_not_on_localhost_every_page_needs_the_token(tmp_path: Path) -> None:
    config = write_config(tmp_path, host="0.0.0.0")
    async with running_app(config) as (_app, bound), aiohttp.ClientSession() as http:
        url = bound.replace("0.0.0.0", "127.0.0.1")
        async with http.get(url + "/api/state") as r:
            assert r.status == 401
        async with http.get(url + "/") as r:
            assert r.status == 401
        async with http.get(url + f"/api/state?token={TOKEN}") as r:
            assert r.status == 200
        async with http.get(url + "/health") as r:
            assert r.status in (200, 503)


async def test_health_reflects_real_state(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await wait_until(lambda: app.engine.status.market_checked_at is not None)
        async with http.get(url + "/health") as r:
            body = await r.json()
            assert r.status == 200, body
            assert body["status"] == "ready"
        app.engine.status.auth_required = "refresh token expired"
        async with http.get(url + "/health") as r:
            body = await r.json()
            assert r.status == 503
            assert body["checks"]["broker"] == {"ok": False, "detail": "refresh token expired"}
        app.engine.status.auth_required = None
        app.engine.status.source_state = "failed: node unreachable"
        async with http.get(url + "/health") as r:
            assert r.status == 503
            assert (await r.json())["checks"]["source"]["ok"] is False
        app.engine.status.source_state = "running"


async def test_metrics_exposition(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path)
    append(
        fills,
        fill_line(1, "tAAPL", "SELL", "3", "190"),
        "not json",
        fill_line(2, "tTSLA", "BUY", "0.001", "240"),
    )
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await wait_until(lambda: app.engine.status.hedges_filled >= 1)
        await wait_until(lambda: app.engine.status.fills_ingested == 2)

        async def scrape() -> str:
            async with http.get(url + "/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                return await r.text()

        async def settled() -> bool:
            return 'st0x_hedges_filled_total{broker="dry-run"} 1.0' in await scrape()

        await wait_until(settled)
        text = await scrape()
        assert 'st0x_fills_ingested_total{source="replay"} 2.0' in text
        assert (
            'st0x_fills_skipped_total{reason="line …: not valid JSON",source="replay"} 1.0' in text
        )
        assert 'st0x_net_position_shares{symbol="TSLA"} 0.001' in text
        assert 'st0x_unhedged_exposure_shares{symbol="TSLA"} 0.001' in text  # below $2 minimum
        assert 'st0x_hedge_latency_seconds_count{broker="dry-run"} 1.0' in text
        assert "st0x_source_ws_reconnects_total" in text
        assert "st0x_broker_rate_limited_total" in text
        assert "st0x_ready 1.0" in text
        # Nothing active: every alert kind is exported as 0, not left out.
        for kind in ALERT_KINDS:
            assert f'st0x_alerts{{kind="{kind}"}} 0.0' in text
        # A scrape evaluates alerts and readiness itself (not the last status push).
        app.engine.status.source_state = "failed: node unreachable"
        text = await scrape()
        assert 'st0x_alerts{kind="source_stalled"} 1.0' in text
        assert "st0x_ready 0.0" in text
        app.engine.status.source_state = "running"


async def test_refuses_rebinding_and_cross_site_websockets(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with running_app(config) as (_app, url), aiohttp.ClientSession() as http:
        async with http.get(url + "/api/state", headers={"Host": "evil.example"}) as r:
            assert r.status == 421
        async with http.get(url + "/api/state", headers={"Host": "localhost:1234"}) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError):
            async with http.ws_connect(url + "/api/ws", headers={"Origin": "http://evil.example"}):
                pass
        async with http.ws_connect(url + "/api/ws", headers={"Origin": url}) as ws:
            assert json.loads((await ws.receive()).data)["type"] == "initial"


async def test_websocket_streams_hedges_pnl_and_latency(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path)
    async with (
        running_app(config) as (_app, url),
        aiohttp.ClientSession() as http,
        http.ws_connect(url + "/api/ws") as ws,
    ):
        assert json.loads((await ws.receive()).data)["type"] == "initial"
        append(fills, fill_line(1, "tAAPL", "SELL", "2", "191"))
        seen: dict[str, list[dict]] = {}  # type: ignore[type-arg]

        def closed() -> bool:
            return any(m["data"]["state"] == "filled" for m in seen.get("hedge", []))

        while not (closed() and "latency" in seen and len(seen.get("pnl", [])) >= 2):
            msg = json.loads((await ws.receive(timeout=30)).data)
            seen.setdefault(msg["type"], []).append(msg)
        states = [m["data"]["state"] for m in seen["hedge"]]
        assert states[0] in ("pending", "submitted") and states[-1] == "filled"
        hedge = seen["hedge"][-1]["data"]
        assert hedge["side"] == "BUY" and hedge["fills"][0]["kind"] == "hedged"
        fill = seen["fill"][-1]["data"]
        assert [h["kind"] for h in fill["hedges"]] == ["hedged"]
        assert fill["hedges"][0]["latency_seconds"] >= 0
        # Onchain SELL 2 @191, hedge BUY 2 @191 (dry-run fills at the last price): 0 P&L.
        points = [p for m in seen["pnl"] for p in m["data"]["points"]]
        assert [p["venue"] for p in points] == ["onchain", "broker"]
        assert points[-1]["realized"] == "0" and points[-1]["cumulative_total"] == "0"
        assert seen["latency"][-1]["data"]["count"] == 1
        seqs = [m["seq"] for ms in seen.values() for m in ms if "seq" in m]
        assert all(isinstance(s, int) and s > 0 for s in seqs)


async def test_alerts_for_stuck_orders_and_a_stalled_source(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    # The broker takes 30 s to fill; an open hedge is "stuck" after 0.5 s; the
    # source is "stalled" after 1.5 s without input.
    config = write_config(tmp_path, latency=30.0, stuck_after=0.5, stall_after=1.5)
    append(fills, fill_line(1, "tAAPL", "SELL", "2", "191"))
    async with running_app(config) as (_app, url), aiohttp.ClientSession() as http:

        async def alerts() -> set[str]:
            async with http.get(url + "/api/state") as r:
                return {a["kind"] for a in (await r.json())["alerts"]}

        async def stuck() -> bool:
            return "stuck_order" in await alerts()

        await wait_until(stuck, 30)
        async with http.get(url + "/api/state") as r:
            hedges = (await r.json())["hedges"]
        assert hedges[0]["stuck"] is True and hedges[0]["state"] == "submitted"

        async def stalled() -> bool:
            return "source_stalled" in await alerts()

        await wait_until(stalled, 30)
        async with http.get(url + "/health") as r:
            assert r.status == 503
            assert "no input from the fill source" in (await r.json())["checks"]["source"]["detail"]
        async with http.get(url + "/metrics") as r:
            text = await r.text()
        assert 'st0x_alerts{kind="stuck_order"} 1.0' in text
        assert 'st0x_alerts{kind="source_stalled"} 1.0' in text
        assert 'st0x_alerts{kind="paused"} 0.0' in text
        assert 'st0x_source_up{source="replay"} 0.0' in text
        # New input clears the stall.
        append(fills, fill_line(2, "tAAPL", "BUY", "0.1", "190"))

        async def recovered() -> bool:
            return "source_stalled" not in await alerts()

        await wait_until(recovered, 30)


async def test_broker_token_expiry_in_state_alerts_and_metrics(tmp_path: Path) -> None:
    """A broker plugin's token status (st0x-schwab: app.extras["schwab_auth"]) is shown."""
    from datetime import UTC, datetime, timedelta

    config = write_config(tmp_path)
    now = datetime.now(UTC)

    def publish(ends_in: timedelta, problem: str | None = None) -> None:
        app.extras["schwab_auth"] = {
            "authorized": problem is None,
            "authorized_at": (now - timedelta(days=6)).isoformat(),
            "access_expires_at": (now + timedelta(minutes=20)).isoformat(),
            "refresh_expires_at": (now + ends_in).isoformat(),
            "expires_soon": ends_in < timedelta(days=1),
            "problem": problem,
        }

    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:

        async def scrape() -> tuple[dict[str, object], str]:
            async with http.get(url + "/api/state") as r:
                state = await r.json()
            async with http.get(url + "/metrics") as r:
                return state, await r.text()

        state, metrics = await scrape()
        assert state["status"]["broker"]["token"] is None
        assert "st0x_broker_auth_expires_seconds{" not in metrics

        publish(timedelta(days=3))
        state, metrics = await scrape()
        token = state["status"]["broker"]["token"]
        assert token["state"] == "ok" and state["status"]["broker"]["auth"] == "ok"
        assert abs(token["expires_in_seconds"] - 3 * 86400) <= 120
        assert not [a for a in state["alerts"] if a["kind"].startswith("auth")]
        assert 'st0x_broker_auth_required{broker="dry-run"} 0.0' in metrics

        publish(timedelta(hours=5))
        state, metrics = await scrape()
        assert state["status"]["broker"]["auth"] == "expiring"
        kinds = {a["kind"]: a for a in state["alerts"]}
        assert kinds["auth_expiring"]["severity"] == "warning"
        assert "5.0 h" in kinds["auth_expiring"]["message"]
        line = next(
            x for x in metrics.splitlines() if x.startswith("st0x_broker_auth_expires_seconds{")
        )
        assert abs(float(line.split()[-1]) - 5 * 3600) <= 120

        publish(-timedelta(minutes=1), problem="refresh token expired: run `schwab auth`")
        state, metrics = await scrape()
        assert state["status"]["broker"]["auth"] == "required"
        assert state["status"]["broker"]["token"]["expires_in_seconds"] == 0
        kinds = {a["kind"]: a for a in state["alerts"]}
        assert kinds["auth_required"]["severity"] == "critical"
        assert "schwab auth" in kinds["auth_required"]["message"]
        assert 'st0x_broker_auth_required{broker="dry-run"} 1.0' in metrics
        assert 'st0x_broker_auth_expires_seconds{broker="dry-run"} 0.0' in metrics

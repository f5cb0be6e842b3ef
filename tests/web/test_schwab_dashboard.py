"""The dashboard and /metrics with the real st0x-schwab executor against the fake Schwab.

The other dashboard tests use the dry-run broker and publish a token status by
hand; this one runs the bot as `run` wires it with ``type = "schwab"``, so the
refresh-token warning, the broker error counters and the paused-hedging alert
come from the plugin itself (issue 5: "warn a day ahead in logs, metrics and
dashboard"; issue 6: "broker request errors and 429s").
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import dashboard_support
import pytest
from dashboard_support import append, fill_line, running_app, wait_until

st0x_schwab = pytest.importorskip("st0x_schwab")

from st0x_schwab.config import SchwabConfig  # noqa: E402
from st0x_schwab.executor import SchwabExecutor  # noqa: E402
from st0x_testing.fake_schwab import FakeSchwab, Fault  # noqa: E402

from st0x_liquidity import Secret  # noqa: E402
from st0x_liquidity.store import SqliteStore  # noqa: E402

DEADLINE = 30.0
LOGIN_AGE = timedelta(days=6, hours=20)  # the 7-day refresh token ends in ~4 hours


@pytest.fixture
async def fake() -> AsyncIterator[FakeSchwab]:
    server = FakeSchwab(always_open=True)
    server.fill_prices["AAPL"] = Decimal("187.53")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def write_config(tmp: Path, fake: FakeSchwab, key: str) -> Path:
    broker = (
        f'type = "schwab"\napp_key = "{fake.app_key}"\napp_secret = "{fake.app_secret}"\n'
        f'encryption_key = "{key}"\nbase_url = "{fake.url}"\n'
        "retry_backoff = 0.01\nrequests_per_minute = 100000\n"
    )
    hedging = (
        "retry_backoff_max = 0.2\nfailure_backoff = 0.05\nfailure_backoff_max = 0.2\n"
        "clock_recheck = 0.2\n"
    )
    # no dashboard token; stuck_after as the dashboard's default
    return dashboard_support.write_config(
        tmp, token=None, stuck_after=120.0, broker=broker, hedging=hedging
    )


async def login_days_ago(tmp: Path, fake: FakeSchwab, key: str) -> None:
    """`schwab auth` as it would have run LOGIN_AGE ago (the 7 days count from here)."""
    store = SqliteStore(tmp / "st0x.db")
    await store.open()
    config = SchwabConfig(
        app_key=fake.app_key,
        app_secret=Secret(fake.app_secret),
        encryption_key=Secret(key),
        base_url=fake.url,
    )
    back_then = datetime.now(UTC) - LOGIN_AGE
    executor = SchwabExecutor(config, store, now=lambda: back_then)
    try:
        await executor.tokens.exchange_code(fake.issue_code())
    finally:
        await executor.close()
        await store.close()


def sample(metrics: str, name: str) -> float | None:
    prefix = name + '{broker="schwab"} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


async def test_schwab_login_expiry_errors_and_lost_login_on_the_dashboard(
    tmp_path: Path, fake: FakeSchwab
) -> None:
    key = secrets.token_hex(32)
    config = write_config(tmp_path, fake, key)
    await login_days_ago(tmp_path, fake, key)
    fills = tmp_path / "fills.jsonl"
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:

        async def scrape() -> tuple[dict, str]:  # type: ignore[type-arg]
            async with http.get(url + "/api/state") as r:
                state = await r.json()
            async with http.get(url + "/metrics") as r:
                return state, await r.text()

        # The plugin's own token status: expiring, with an alert and the gauge.
        async def expiring() -> bool:
            state, _ = await scrape()
            token = state["status"]["broker"]["token"]
            return token is not None and token["state"] == "expiring"

        await wait_until(expiring, DEADLINE)
        state, metrics = await scrape()
        token = state["status"]["broker"]["token"]
        assert token["provider"] == "schwab_auth" and token["authorized"] is True
        left = LOGIN_AGE - timedelta(days=7)
        assert abs(token["expires_in_seconds"] + left.total_seconds()) <= 300
        alerts = {a["kind"]: a for a in state["alerts"]}
        assert alerts["auth_expiring"]["severity"] == "warning"
        gauge = sample(metrics, "st0x_broker_auth_expires_seconds")
        assert gauge is not None and abs(gauge + left.total_seconds()) <= 300
        assert sample(metrics, "st0x_broker_auth_required") == 0.0

        # A hedge whose status polls meet a 500 (retried) and a 429 (backed off).
        fake.inject("get_order", Fault("status", 500))
        fake.inject(
            "get_order",
            Fault("status", 429, {"message": "Too many requests"}, headers={"Retry-After": "1"}),
        )
        append(fills, fill_line(1, "tAAPL", "SELL", "2", "190"))
        await wait_until(lambda: app.engine.status.hedges_filled == 1, DEADLINE)
        assert [(o.instruction, o.quantity) for o in fake.orders.values()] == [("BUY", Decimal(2))]

        async def counted() -> bool:
            _, text = await scrape()
            return (
                sample(text, "st0x_broker_request_errors_total") == 2.0
                and sample(text, "st0x_broker_rate_limited_total") == 1.0
                and sample(text, "st0x_hedges_filled_total") == 1.0
            )

        await wait_until(counted, DEADLINE)

        # Schwab revokes the login: hedging pauses with one clear error, fills keep coming.
        fake.revoke_refresh_tokens()
        fake.expire_access_tokens()
        append(fills, fill_line(2, "tAAPL", "SELL", "1.5", "190"))
        await wait_until(lambda: app.engine.status.auth_required is not None, DEADLINE)

        async def required() -> bool:
            state, text = await scrape()
            kinds = {a["kind"]: a for a in state["alerts"]}
            return (
                "auth_required" in kinds
                and "schwab auth" in kinds["auth_required"]["message"]
                and sample(text, "st0x_broker_auth_required") == 1.0
                and state["health"]["status"] == "not_ready"
            )

        await wait_until(required, DEADLINE)
        async with http.get(url + "/health") as r:
            assert r.status == 503
            body = await r.json()
        assert "schwab auth" in json.dumps(body["checks"]["broker"])
        assert len(fake.orders) == 1  # nothing placed while logged out
        [aapl] = await app.store.positions()
        assert aapl.net == Decimal("-1.5")  # the new fill was recorded

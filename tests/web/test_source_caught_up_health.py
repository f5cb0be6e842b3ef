"""``/health`` readiness follows the fill source's ``caught_up`` (replay: True at end of file)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from dashboard_support import running_app, wait_until, write_config


async def test_health_waits_for_the_source_to_catch_up(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        source = app.source
        await wait_until(lambda: app.engine.status.market_checked_at is not None)
        await wait_until(lambda: getattr(source, "caught_up", None) is True)
        async with http.get(url + "/health") as r:
            body = await r.json()
            assert r.status == 200, body
            assert body["checks"]["source"]["ok"] is True
        source.caught_up = False  # what a backfill looks like
        async with http.get(url + "/health") as r:
            body = await r.json()
            assert r.status == 503, body
            assert body["checks"]["source"] == {"ok": False, "detail": "catching up"}

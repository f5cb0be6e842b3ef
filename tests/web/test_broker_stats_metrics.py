"""``/metrics`` exposes the executor's ``stats`` (broker request errors and 429s)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from dashboard_support import running_app, write_config


async def test_broker_request_errors_and_429s_in_metrics(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:

        async def scrape() -> str:
            async with http.get(url + "/metrics") as r:
                assert r.status == 200
                return await r.text()

        assert app.executor.stats == {"request_errors": 0, "rate_limited": 0}
        text = await scrape()
        assert 'st0x_broker_request_errors_total{broker="dry-run"} 0.0' in text
        assert 'st0x_broker_rate_limited_total{broker="dry-run"} 0.0' in text

        # What an HTTP broker plugin's counters do on a 500 and then a 429.
        app.executor.stats["request_errors"] += 2
        app.executor.stats["rate_limited"] += 1
        text = await scrape()
        assert 'st0x_broker_request_errors_total{broker="dry-run"} 2.0' in text
        assert 'st0x_broker_rate_limited_total{broker="dry-run"} 1.0' in text

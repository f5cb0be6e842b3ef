"""Hysteresis: a condition that comes and goes is one problem that stays, not a flapping
``/health``; it clears once it has been good for ``clear_after`` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
from dashboard_support import running_app, wait_until, write_config

from st0x_liquidity.web.conditions import Latch


def test_latch_raises_at_once_and_clears_only_after_a_good_stretch() -> None:
    latch = Latch(clear_after=10.0, clear_count=3)
    assert latch.observe(None, now=0.0) is None  # passed once: start-up is over
    assert latch.observe("404 order not found", now=1.0) == "404 order not found"
    # Good, bad, good...: reported all along, with the latest text.
    assert latch.observe(None, now=2.0) == "404 order not found"
    assert latch.recovering
    assert latch.observe("404 again", now=3.0) == "404 again"
    for t in (4.0, 5.0, 6.0, 12.9):  # three good ones, but not 10 s since the last bad
        assert latch.observe(None, now=t) == "404 again"
    assert latch.observe(None, now=13.0) is None
    assert latch.since is None and not latch.recovering


def test_latch_needs_consecutive_good_observations() -> None:
    latch = Latch(clear_after=0.0, clear_count=3, lenient=False)
    latch.observe("down", now=0.0)
    assert latch.observe(None, now=1.0) == "down"
    assert latch.observe(None, now=2.0) == "down"
    assert latch.observe(None, now=3.0) is None


def test_start_up_condition_clears_at_once_unless_strict() -> None:
    lenient = Latch(clear_after=30.0)
    assert lenient.observe("broker not answering", now=0.0) == "broker not answering"
    assert lenient.observe(None, now=1.0) is None  # never passed before: nothing flapped
    assert lenient.observe("broker error", now=2.0) == "broker error"
    assert lenient.observe(None, now=3.0) == "broker error"  # now it is held
    strict = Latch(clear_after=30.0, lenient=False)
    strict.observe("stuck", now=0.0)
    assert strict.observe(None, now=1.0) == "stuck"


async def health_statuses(http: aiohttp.ClientSession, url: str, seconds: float) -> list[int]:
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        async with http.get(url + "/health") as r:
            seen.append(r.status)
        await asyncio.sleep(0.1)
    return seen


async def flapping_broker(app: Any, period: float) -> None:
    """What the engine does while one order's status keeps answering 404 and other
    broker calls succeed: ``broker_error`` set, cleared, set again."""
    status = app.engine.status
    while True:
        status.broker_error = "status of st0x-x-AAPL-1: 404 order not found"
        await asyncio.sleep(period / 2)
        status.broker_error = None
        await asyncio.sleep(period / 2)


async def test_flapping_broker_error_is_one_held_problem(tmp_path: Path) -> None:
    config = write_config(tmp_path, clear_after=3.0)
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await wait_until(lambda: app.engine.status.market_checked_at is not None)
        async with http.get(url + "/health") as r:
            assert r.status == 200
        flapper = asyncio.create_task(flapping_broker(app, 1.0))
        try:
            await asyncio.sleep(0.1)  # it is set first
            seen = await health_statuses(http, url, 4.0)
            async with http.get(url + "/api/state") as r:
                state = await r.json()
        finally:
            flapper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flapper
        app.engine.status.broker_error = None
        assert set(seen) == {503}, seen  # never 200 while it comes and goes
        alerts = [a for a in state["alerts"] if a["kind"] == "broker_error"]
        assert len(alerts) == 1 and "404" in alerts[0]["message"]
        async with http.get(url + "/health") as r:
            body = await r.json()
        assert r.status == 503 and "404" in body["checks"]["broker"]["detail"]
        assert "broker" in body["failing_since"]
        # Good from now on: held for clear_after (3 s), then ready again.
        cleared = time.monotonic()
        seen = await health_statuses(http, url, 2.0)
        assert set(seen) == {503}, seen

        async def ready() -> bool:
            async with http.get(url + "/health") as r:
                return r.status == 200

        await wait_until(ready, 10)
        assert time.monotonic() - cleared >= 3.0
        async with http.get(url + "/api/state") as r:
            assert not [a for a in (await r.json())["alerts"] if a["kind"] == "broker_error"]


async def test_without_hysteresis_the_same_condition_flaps(tmp_path: Path) -> None:
    """The control: with clear_after near 0, the same flapping shows (what it was before)."""
    config = write_config(tmp_path, clear_after=0.001)
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await wait_until(lambda: app.engine.status.market_checked_at is not None)
        flapper = asyncio.create_task(flapping_broker(app, 1.0))
        try:
            seen = await health_statuses(http, url, 4.0)
        finally:
            flapper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flapper
        app.engine.status.broker_error = None
        # Still needs 3 good observations in a row: at 10 per second that is quick.
        assert 200 in seen and 503 in seen

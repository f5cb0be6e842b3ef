"""What an on-call person sees, in headless Chromium against the real app: the summary at
the top, breaker history, severity, a phone-sized screen, the favicon, and a page that
greys itself out when the bot goes away."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from dashboard_support import TOKEN, append, fill_line, running_app, wait_until, write_config
from test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM, pytestmark  # noqa: F401

playwright_api = pytest.importorskip("playwright.async_api")

GREEN = "rgb(63, 185, 80)"


async def pause(url: str, reason: str, actor: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url + "/api/breaker",
            json={"action": "pause", "reason": reason, "actor": actor},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as r,
    ):
        assert r.status == 200


async def test_oncall_page_on_a_phone(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path)
    append(fills, fill_line(1, "tAAPL", "BUY", "0.8", "189.40"))
    async with running_app(config) as (app, url), playwright_api.async_playwright() as pw:
        await wait_until(lambda: app.engine.status.hedges_filled >= 1, 20)
        await pause(url, "broker maintenance window", "alice")
        append(fills, fill_line(2, "tTSLA", "SELL", "3", "241.10"))
        await wait_until(lambda: app.engine.status.fills_ingested >= 2, 20)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 740})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url + "/")
            await page.wait_for_selector("#conn.good", timeout=10_000)

            # The top of the page: unhedged USD (3 TSLA at 241.10) and the oldest open fill.
            await page.wait_for_function(
                "document.getElementById('sum-unhedged').textContent === '$723.30'",
                timeout=10_000,
            )
            oldest = await page.inner_text("#sum-oldest-detail")
            assert "TSLA" in oldest and "3" in oldest
            assert await page.inner_text("#sum-oldest") not in ("none", "–")
            assert await page.inner_text("#sum-source") == "running"
            assert "last input" in await page.inner_text("#sum-source-detail")

            # Paused while the exposure grew: critical, in red.
            await page.wait_for_selector('#alerts li.critical[data-kind="paused"]', timeout=10_000)
            await page.wait_for_selector("#sum-hedging-box.bad")
            assert await page.inner_text("#sum-hedging") == "paused"

            # Breaker history: who, when, why.
            entry = page.locator('#breaker-history li[data-action="pause"]').first
            text = await entry.inner_text()
            assert "alice" in text and "broker maintenance window" in text and "127.0.0.1" in text

            # 375 px: nothing wider than the screen, the pause button reachable.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, width
            box = await page.evaluate(
                "(() => { const r = document.getElementById('breaker-btn').getBoundingClientRect();"
                " return {left: r.left, right: r.right, top: r.top + window.scrollY,"
                " height: document.documentElement.scrollHeight}; })()"
            )
            assert box["left"] >= 0 and box["right"] <= 375, box
            assert 0 <= box["top"] < box["height"], box
            await page.locator("#breaker-btn").scroll_into_view_if_needed()
            assert await page.locator("#breaker-btn").is_visible()
            assert await page.inner_text("#breaker-btn") == "resume"

            # A favicon, served.
            href = await page.get_attribute("#favicon", "href")
            assert href is not None and href.startswith("data:image/svg+xml")  # coloured by state
            async with aiohttp.ClientSession() as http, http.get(url + "/favicon.svg") as r:
                assert r.status == 200 and r.content_type == "image/svg+xml"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-375.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()


async def test_page_goes_stale_when_the_bot_stops(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path)
    append(fills, fill_line(1, "tAAPL", "BUY", "0.8", "189.40"))
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            async with running_app(config) as (app, url):
                await wait_until(lambda: app.engine.status.hedges_filled >= 1, 20)
                await page.goto(url + "/")
                await page.wait_for_selector("#conn.good", timeout=10_000)
                await page.wait_for_selector("#health.good", timeout=10_000)
                assert not await page.evaluate("document.body.classList.contains('stale')")
                assert await page.locator("#stale").is_hidden()
            # The bot (and its server) is gone; the page is still open.
            await page.wait_for_selector("body.stale", timeout=15_000)
            banner = await page.inner_text("#stale")
            assert "data as of" in banner and "not live" in banner
            panels = await page.evaluate(
                "[...document.querySelectorAll('main .panel')].filter((p) => !p.hidden)"
                ".map((p) => ({id: p.id, asof: (p.querySelector('h2 .asof') || {}).textContent,"
                " opacity: getComputedStyle(p).opacity, filter: getComputedStyle(p).filter}))"
            )
            assert len(panels) >= 6
            for panel in panels:
                assert panel["asof"] and panel["asof"].startswith("data as of"), panel
                assert float(panel["opacity"]) < 1 and "grayscale" in panel["filter"], panel
            colors = await page.evaluate(
                "[...document.querySelectorAll('header .pill')].map((p) => getComputedStyle(p).color)"
            )
            # Nothing in the header says "good" about a bot we can't see (the panels'
            # own pills are inside the greyed-out panels, checked above).
            assert GREEN not in colors, colors
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-stale.png"), full_page=True)
        finally:
            await browser.close()

"""The dashboard in headless Chromium (Debian's /usr/bin/chromium through Playwright)
against the real app: replay source following a file, dry-run broker."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from dashboard_support import TOKEN, append, fill_line, running_app, wait_until, write_config

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("ST0X_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get(
        "ST0X_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
    )
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason="Debian chromium not installed (scripts/install-peers.sh installs it)",
)


def tid(n: int) -> str:
    return f"0x{n:064x}:0"


async def test_dashboard_in_a_real_browser(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path)
    append(
        fills,
        fill_line(1, "tAAPL", "BUY", "0.8", "189.40"),
        fill_line(2, "tTSLA", "SELL", "1.2", "241.10"),
        fill_line(3, "tAAPL", "SELL", "0.3", "190.05"),
        fill_line(4, "NVDA0x", "BUY", "2.5", "121.60"),
    )
    async with running_app(config) as (app, url), playwright_api.async_playwright() as pw:
        await wait_until(lambda: app.engine.status.hedges_filled >= 3, 20)
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1440, "height": 1100},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url + "/")
            await page.wait_for_selector("#conn.good", timeout=10_000)
            for n in (1, 2, 3, 4):
                await page.wait_for_selector(f'tr.fill[data-trade-id="{tid(n)}"]', timeout=10_000)
            await page.wait_for_selector('#positions tr[data-symbol="AAPL"]')
            await page.evaluate("window.__notReloaded = true")

            # A new fill appears live, without a reload.
            append(fills, fill_line(5, "tAAPL", "BUY", "1.5", "190.20"))
            await page.wait_for_selector(f'tr.fill[data-trade-id="{tid(5)}"]', timeout=10_000)
            assert await page.evaluate("window.__notReloaded === true")

            # Expanding it shows the hedge that covered it, with its price.
            await wait_until(lambda: app.engine.status.hedges_filled >= 4, 20)
            await page.click(f'tr.fill[data-trade-id="{tid(5)}"]')
            detail = page.locator(f'tr.detail[data-detail-for="{tid(5)}"]')
            await detail.get_by_text("hedged by").wait_for(timeout=10_000)
            assert "SELL" in await detail.inner_text()

            # P&L and latency panels have data.
            await page.wait_for_selector("#pnl-chart path", timeout=10_000)
            await page.wait_for_selector("#latency-chart rect", state="attached", timeout=10_000)
            assert (await page.inner_text("#pnl-total")).startswith(("$", "-$"))

            # The breaker refuses without the token...
            await page.click("#breaker-btn")
            await page.wait_for_function(
                "document.getElementById('breaker-msg').textContent.includes('token')"
            )
            assert app.engine.status.paused is None
            assert await page.inner_text("#breaker-status") == "active"
            # ...and with a wrong one...
            await page.fill("#token-input", "not-the-token")
            await page.click("#breaker-btn")
            await page.wait_for_function(
                "document.getElementById('breaker-msg').textContent.includes('invalid')"
            )
            assert app.engine.status.paused is None
            # ...and pauses with it.
            await page.fill("#token-input", TOKEN)
            await page.fill("#breaker-reason", "browser test")
            await page.click("#breaker-btn")
            await page.wait_for_function(
                "document.getElementById('breaker-status').textContent === 'paused'"
            )
            assert app.engine.status.paused == "browser test"
            await page.wait_for_selector('#alerts li[data-kind="paused"]', timeout=10_000)

            # Paused: fills are still recorded and shown, no hedge goes out.
            hedges_before = app.engine.status.hedges_placed
            append(fills, fill_line(6, "tTSLA", "BUY", "3", "240.00"))
            await page.wait_for_selector(f'tr.fill[data-trade-id="{tid(6)}"]', timeout=10_000)
            assert app.engine.status.hedges_placed == hedges_before
            ARTIFACTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test setup
            await page.screenshot(path=str(ARTIFACTS / "dashboard-paused.png"), full_page=True)

            # Resume: the exposure accumulated while paused is hedged.
            await page.fill("#breaker-reason", "test over")
            await page.click("#breaker-btn")
            await page.wait_for_function(
                "document.getElementById('breaker-status').textContent === 'active'"
            )
            assert app.engine.status.paused is None
            await wait_until(lambda: app.engine.status.hedges_placed > hedges_before, 20)
            log = await app.store.fetch(
                "SELECT action, reason FROM circuit_breaker_log ORDER BY id"
            )
            assert log == [("pause", "browser test"), ("resume", "test over")]
            await page.wait_for_selector("#alerts li.ok", timeout=10_000)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert errors == []
        finally:
            await context.close()


async def test_inventory_bars_with_their_bands(tmp_path: Path) -> None:
    """With [rebalancing], the page shows one bar per asset: onchain share against its band."""
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path)
    with config.open("a") as fh:
        fh.write('[rebalancing]\ndry_run = true\n[rebalancing.equity]\ntarget = "0.5"\n')
        fh.write('deviation = "0.2"\n')
    append(
        fills,
        fill_line(1, "tAAPL", "SELL", "2", "190"),
        fill_line(2, "tTSLA", "BUY", "3", "240"),
    )
    async with running_app(config) as (app, url), playwright_api.async_playwright() as pw:
        await wait_until(lambda: app.engine.status.hedges_filled >= 2, 20)
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1440, "height": 1100},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url + "/")
            await page.wait_for_selector("#conn.good", timeout=10_000)
            await page.wait_for_selector("#inventory-panel:not([hidden])", timeout=10_000)
            for asset in ("AAPL", "TSLA"):
                row = page.locator(f'.inv-row[data-asset="{asset}"]')
                await row.wait_for(timeout=10_000)
                band = row.locator(".inv-band")
                assert await band.get_attribute("style") == "left:30%;width:40%"
                assert await row.locator(".inv-target").get_attribute("style") == "left:50%"
                # The panel is re-rendered on every update, so a one-shot
                # bounding_box() can meet a detached node: wait for a visible bar.
                await row.locator(".inv-bar").wait_for(state="visible", timeout=10_000)
            # Refreshed on updates: a new asset's bar appears without a reload.
            append(fills, fill_line(3, "NVDA0x", "BUY", "1", "120"))
            await page.wait_for_selector('.inv-row[data-asset="NVDA"]', timeout=15_000)
            # A broker refresh token ending within a day shows in the header and alerts.
            assert await page.locator("#auth-chip").is_hidden()
            ends = datetime.now(UTC) + timedelta(hours=6)
            app.extras["schwab_auth"] = {
                "authorized": True,
                "authorized_at": (ends - timedelta(days=7)).isoformat(),
                "access_expires_at": None,
                "refresh_expires_at": ends.isoformat(),
                "expires_soon": True,
                "problem": None,
            }
            await page.wait_for_function(
                "document.getElementById('auth').textContent === 'expires soon'", timeout=10_000
            )
            await page.wait_for_selector('#alerts li[data-kind="auth_expiring"]', timeout=10_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test setup
            await page.screenshot(path=str(ARTIFACTS / "dashboard-inventory.png"), full_page=True)
            assert errors == []
        finally:
            await context.close()


async def test_no_inventory_panel_without_rebalancing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with running_app(config) as (_app, url), playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url + "/")
            await page.wait_for_selector("#conn.good", timeout=10_000)
            assert await page.locator("#inventory-panel").is_hidden()
        finally:
            await browser.close()


async def test_extended_hours_panel_shows_sessions_and_live_limits(tmp_path: Path) -> None:
    after_hours = datetime(2026, 3, 3, 22, 0, tzinfo=UTC)  # Tuesday 17:00 New York
    broker = (
        'type = "dry-run"\nprofile = "fractional"\nsessions = true\n'
        f'clock_start = "{after_hours.isoformat()}"\nclock_speed = 0\n'
        'prices = { AAPL = "90" }\n'  # the sell limit at 99.5 rests
    )
    config = write_config(tmp_path, broker=broker)
    config.write_text(
        config.read_text() + "\n[extended_hours]\ncheck_interval = 0.05\n"
        "[extended_hours.symbols.AAPL]\novernight = true\n"
    )
    append(tmp_path / "fills.jsonl", fill_line(1, "tAAPL", "BUY", "2", "100"))
    async with running_app(config) as (app, url), playwright_api.async_playwright() as pw:
        await wait_until(lambda: app.engine.status.hedges_placed >= 1, 20)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url + "/")
            await page.wait_for_selector("#extended-limits tr[data-cid]", timeout=10_000)
            row = await page.locator('#extended-symbols tr[data-symbol="AAPL"]').inner_text()
            assert "post" in row and "120" in row  # hedgeable hours with overnight
            limit = await page.locator("#extended-limits tr[data-cid]").inner_text()
            assert "99.5" in limit and "onchain 100" in limit and "SELL" in limit
        finally:
            await browser.close()


async def test_pnl_panel_shows_the_limit_slippage_as_limits_close(tmp_path: Path) -> None:
    after_hours = datetime(2026, 3, 3, 22, 0, tzinfo=UTC)  # Tuesday 17:00 New York
    broker = (
        'type = "dry-run"\nprofile = "fractional"\nsessions = true\n'
        f'clock_start = "{after_hours.isoformat()}"\nclock_speed = 0\n'
        'prices = { AAPL = "90" }\n'  # the sell limit at 99.5 rests
    )
    config = write_config(tmp_path, broker=broker)
    config.write_text(
        config.read_text() + "\n[extended_hours]\ncheck_interval = 0.05\n"
        "[extended_hours.symbols.AAPL]\n"
    )
    append(tmp_path / "fills.jsonl", fill_line(1, "tAAPL", "BUY", "2", "100"))
    async with running_app(config) as (app, url), playwright_api.async_playwright() as pw:
        await wait_until(lambda: app.engine.status.hedges_placed >= 1, 20)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url + "/")
            await page.wait_for_selector("#conn.good", timeout=10_000)
            aapl = page.locator("#pnl-summary tbody tr", has_text="AAPL")
            await aapl.wait_for(timeout=10_000)
            assert (await aapl.locator("td").last.inner_text()).strip() == "–"  # resting
            # The market crosses: the limit fills at 99.8, 0.2 below the onchain 100.
            app.executor.set_price("AAPL", Decimal("99.8"))
            await page.wait_for_function(
                "() => [...document.querySelectorAll('#pnl-summary tbody tr')]"
                ".some((r) => r.innerText.includes('AAPL') && r.innerText.includes('bps'))",
                timeout=10_000,
            )
            cell = await aapl.locator("td").last.inner_text()
            assert "$0.40" in cell and " 20 bps" in cell.replace("\n", " "), cell
        finally:
            await browser.close()

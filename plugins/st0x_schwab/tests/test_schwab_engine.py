"""The Schwab executor under the real engine, a real SQLite file and the fake Schwab."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from st0x_schwab.config import SchwabConfig
from st0x_schwab.executor import SchwabExecutor
from st0x_testing.fake_schwab import FakeSchwab, Fault, TestClock

from st0x_liquidity import Direction, Fill, Symbol, TradeId
from st0x_liquidity.cli import main
from st0x_liquidity.config import AppConfig, load_config
from st0x_liquidity.engine import Engine
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.protocols import Cursor, FillItem, SourceItem
from st0x_liquidity.store import SqliteStore

T0 = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


class Feed:
    """A fill source the test pushes into."""

    name = "test"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SourceItem] = asyncio.Queue()
        self.n = 0

    def sell(self, amount: str, symbol: str = "tAAPL") -> None:
        self.push(Direction.SELL, amount, symbol)

    def push(self, direction: Direction, amount: str, symbol: str = "tAAPL") -> None:
        self.n += 1
        fill = Fill(
            TradeId(f"0x{self.n:064x}", 0), Symbol.parse(symbol), direction,
            Decimal(amount), Decimal("100"), self.n, T0,
        )
        self.queue.put_nowait(FillItem(fill, {"n": self.n}))

    async def stream(self, cursor: Cursor | None) -> AsyncIterator[SourceItem]:
        while True:
            yield await self.queue.get()

    async def close(self) -> None:
        return None


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def clock() -> TestClock:
    # Both sides see a Wednesday morning in New York whatever the real time is, so
    # the executor's own market-hours estimate (used while logged out) says "open".
    return TestClock(T0)


@pytest.fixture
async def live_fake(clock: TestClock) -> AsyncIterator[FakeSchwab]:
    server = FakeSchwab(always_open=True, now=clock.now)
    server.fill_prices["AAPL"] = Decimal("187.53")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def env(live_fake: FakeSchwab) -> dict[str, str]:
    return {
        "ST0X_BROKER_APP_SECRET": live_fake.app_secret,
        "ST0X_BROKER_ENCRYPTION_KEY": secrets.token_hex(32),
    }


@pytest.fixture
def config_file(tmp_path: Path, live_fake: FakeSchwab) -> Path:
    path = tmp_path / "st0x.toml"
    path.write_text(
        'database_url = "sqlite:st0x.db"\n'
        '[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        f'[broker]\ntype = "schwab"\napp_key = "{live_fake.app_key}"\n'
        f'base_url = "{live_fake.url}"\nretry_backoff = 0.01\n'
        "requests_per_minute = 100000\n"
        "[hedging]\npoll_interval = 0.05\npoll_jitter = 0.0\nretry_backoff_max = 0.1\n"
        "failure_backoff = 0.05\nfailure_backoff_max = 0.1\nclock_recheck = 0.2\n"
        "[engine]\nshutdown_timeout = 2.0\n"
    )
    return path


@attrs.define
class Running:
    config: AppConfig
    store: SqliteStore
    executor: SchwabExecutor
    feed: Feed
    engine: Engine
    task: asyncio.Task[None]
    config_file: Path
    env: dict[str, str]


@pytest.fixture
async def running(config_file: Path, env: dict[str, str], live_fake: FakeSchwab,
                  clock: TestClock) -> AsyncIterator[Running]:
    config = load_config(config_file, load_registry(), env)
    assert isinstance(config.broker, SchwabConfig)
    store = SqliteStore(config.database_path)
    await store.open()
    executor = SchwabExecutor(config.broker, store, now=clock.now)
    await executor.tokens.exchange_code(live_fake.issue_code())
    await executor.start()
    feed = Feed()
    engine = Engine(config, store, executor, feed, database_id=store.database_id)
    task = asyncio.create_task(engine.run())
    try:
        yield Running(config, store, executor, feed, engine, task, config_file, env)
    finally:
        engine.request_stop()
        await asyncio.wait_for(task, 15)
        await executor.close()
        await store.close()


def bought(fake: FakeSchwab) -> list[tuple[str, Decimal]]:
    return [(o.instruction, o.quantity) for o in fake.orders.values()]


async def test_whole_share_batching(running: Running, live_fake: FakeSchwab) -> None:
    """0.3 + 0.5 + 0.4 sold onchain -> buy 1 share at Schwab, 0.2 stays open."""
    running.feed.sell("0.3")
    running.feed.sell("0.5")
    await wait_for(lambda: running.engine.status.fills_ingested == 2)
    await asyncio.sleep(0.3)
    assert live_fake.orders == {}  # 0.8 < 1 share: nothing to hedge yet
    running.feed.sell("0.4")
    await wait_for(lambda: running.engine.status.hedges_filled == 1)
    assert bought(live_fake) == [("BUY", Decimal(1))]
    [aapl] = await running.store.positions()
    assert aapl.net == Decimal("-0.2")
    [hedge] = await running.store.hedge_orders()
    assert hedge.state == "filled" and hedge.average_price == Decimal("187.53")
    assert hedge.broker_order_id == str(next(iter(live_fake.orders)))


async def test_ambiguous_post_under_the_engine_places_one_order(
    running: Running, live_fake: FakeSchwab
) -> None:
    live_fake.inject("place_order", Fault("disconnect_after"))
    running.feed.sell("2")
    await wait_for(lambda: running.engine.status.hedges_filled == 1)
    assert bought(live_fake) == [("BUY", Decimal(2))]
    [aapl] = await running.store.positions()
    assert aapl.net == 0


async def test_back_to_back_identical_hedges_are_not_confused_in_recovery(
    running: Running, live_fake: FakeSchwab
) -> None:
    """The first hedge's order (same symbol, side, quantity, minutes earlier) is
    owned by its hedge record, so recovering the second does not take it."""
    running.feed.sell("1")
    await wait_for(lambda: running.engine.status.hedges_filled == 1)
    live_fake.inject("place_order", Fault("disconnect_before"))
    running.feed.sell("1")
    await wait_for(lambda: running.engine.status.hedges_filled == 2)
    assert bought(live_fake) == [("BUY", Decimal(1)), ("BUY", Decimal(1))]
    hedges = await running.store.hedge_orders()
    assert len({h.broker_order_id for h in hedges}) == 2
    [aapl] = await running.store.positions()
    assert aapl.net == 0


@pytest.mark.parametrize("how", ["revoked", "seven_days"])
async def test_lost_login_pauses_hedging_and_schwab_auth_resumes_it(
    running: Running, live_fake: FakeSchwab, monkeypatch: pytest.MonkeyPatch,
    clock: TestClock, how: str, *, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="st0x_liquidity.engine")
    await wait_for(lambda: running.engine.status.market_open)
    if how == "revoked":
        live_fake.revoke_refresh_tokens()
        live_fake.expire_access_tokens()
    else:
        clock.advance(days=7)  # a week after the login: Wednesday again
    running.feed.sell("1.5")
    await wait_for(lambda: running.engine.status.auth_required is not None)
    assert "schwab auth" in str(running.engine.status.auth_required)
    running.feed.sell("0.7")
    await wait_for(lambda: running.engine.status.fills_ingested == 2)
    await asyncio.sleep(0.3)
    assert live_fake.orders == {}
    [aapl] = await running.store.positions()
    assert aapl.net == Decimal("-2.2")  # fills kept accumulating
    # One clear error while logged out (clock rechecks every 0.2 s here): no
    # repeats, and no false "authorised again" between them.
    await asyncio.sleep(1.0)
    engine_logs = [r for r in caplog.records if r.name == "st0x_liquidity.engine"]
    errors = [r.getMessage() for r in engine_logs if "re-authorisation" in r.getMessage()]
    assert len(errors) == 1 and "schwab auth" in errors[0]
    assert not any("authorised again" in r.getMessage() for r in engine_logs)
    assert running.engine.status.auth_required is not None

    # The operator runs `schwab auth` in another process; the bot is not restarted.
    url = (
        f"{live_fake.url}/v1/oauth/authorize?client_id={live_fake.app_key}"
        "&redirect_uri=https%3A%2F%2F127.0.0.1"
    )
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as r:
        redirected = r.headers["Location"]
    for key, value in running.env.items():
        monkeypatch.setenv(key, value)
    argv = ["schwab", "auth", "--config-file", str(running.config_file), "--redirect-url", redirected]
    assert await asyncio.to_thread(main, argv) == 0

    await wait_for(lambda: running.engine.status.hedges_filled == 2)
    assert running.engine.status.auth_required is None
    assert any("authorised again" in r.getMessage() for r in caplog.records)
    assert bought(live_fake) == [("BUY", Decimal(1)), ("BUY", Decimal(1))]
    [aapl] = await running.store.positions()
    assert aapl.net == Decimal("-0.2")

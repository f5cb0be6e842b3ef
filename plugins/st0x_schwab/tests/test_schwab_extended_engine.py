"""The engine with the Schwab executor and the fake on one test clock, outside regular hours.

After hours a fill is hedged with a ``PM`` limit order (never a market order);
an unfilled limit is cancelled and placed again. The replacement has the same
symbol, side and quantity as the cancelled one, and Schwab has no client
order ids: when the replacement's POST answer is lost, recovery must take the
new order, not the old one (which the first hedge record owns). The regular
open hedges what is left with a ``NORMAL`` market order.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from st0x_schwab.config import SchwabConfig
from st0x_schwab.executor import SchwabExecutor
from st0x_testing.fake_schwab import EASTERN, FakeSchwab, Fault, TestClock

from st0x_liquidity import Direction, Fill, Symbol, TradeId
from st0x_liquidity.config import load_config
from st0x_liquidity.engine import Engine
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.protocols import Cursor, FillItem, SourceItem
from st0x_liquidity.store import SqliteStore

WEDNESDAY = date(2026, 3, 4)


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), EASTERN).astimezone(UTC)


class Feed:
    name = "test"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SourceItem] = asyncio.Queue()

    def push(self, n: int, direction: Direction, amount: str, price: str) -> None:
        fill = Fill(
            TradeId(f"0x{n:064x}", 0), Symbol.parse("tAAPL"), direction,
            Decimal(amount), Decimal(price), n, ny(WEDNESDAY, 17),
        )
        self.queue.put_nowait(FillItem(fill, {"n": n}))

    async def stream(self, cursor: Cursor | None) -> AsyncIterator[SourceItem]:
        while True:
            yield await self.queue.get()

    async def close(self) -> None:
        return None


async def wait_for(predicate: object, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[FakeSchwab, TestClock, Feed, Engine]]:
    clock = TestClock(ny(WEDNESDAY, 17))
    fake = FakeSchwab(now=clock.now)
    fake.set_price("AAPL", "195")  # a buy limit near 190 rests
    await fake.start()
    config_file = tmp_path / "st0x.toml"
    config_file.write_text(
        'database_url = "sqlite:st0x.db"\n'
        '[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        f'[broker]\ntype = "schwab"\napp_key = "{fake.app_key}"\n'
        f'base_url = "{fake.url}"\nretry_backoff = 0.01\nrequests_per_minute = 100000\n'
        "[hedging]\npoll_interval = 0.05\npoll_jitter = 0.0\nretry_backoff_max = 0.1\n"
        "failure_backoff = 0.05\nfailure_backoff_max = 0.1\nclock_recheck = 0.1\n"
        "[engine]\nshutdown_timeout = 2.0\n"
        "[extended_hours]\nreprice_timeout = 60\ncheck_interval = 0.05\n"
        "[extended_hours.symbols.AAPL]\n"
    )
    env = {
        "ST0X_BROKER_APP_SECRET": fake.app_secret,
        "ST0X_BROKER_ENCRYPTION_KEY": secrets.token_hex(32),
    }
    config = load_config(config_file, load_registry(), env)
    assert isinstance(config.broker, SchwabConfig)
    store = SqliteStore(config.database_path)
    await store.open()
    executor = SchwabExecutor(config.broker, store, now=clock.now)
    await executor.tokens.exchange_code(fake.issue_code())
    await executor.start()
    feed = Feed()
    engine = Engine(config, store, executor, feed, database_id=store.database_id, now=clock.now)
    task = asyncio.create_task(engine.run())
    try:
        yield fake, clock, feed, engine
    finally:
        engine.request_stop()
        await asyncio.wait_for(task, 15)
        await executor.close()
        await store.close()
        await fake.stop()


async def test_pm_limit_reprice_with_a_lost_answer_then_the_open(
    setup: tuple[FakeSchwab, TestClock, Feed, Engine],
) -> None:
    fake, clock, feed, engine = setup
    feed.push(1, Direction.SELL, "3", "190")  # the maker sold 3 tAAPL: we buy 3 AAPL
    await wait_for(lambda: len(fake.orders) == 1)
    # The engine's own record of the placement: the limit's age counts from it, so
    # moving the clock before it would start the age after the move.
    await wait_for(lambda: engine.status.hedges_placed == 1)
    [first] = fake.orders.values()
    assert (first.order_type, first.session, first.instruction) == ("LIMIT", "PM", "BUY")
    assert first.quantity == 3 and first.price is not None and first.price > Decimal(190)

    # Reprice: the old order is cancelled; the new one's POST answer is lost.
    fake.inject("place_order", Fault("disconnect_after"))
    clock.advance(seconds=61)
    await wait_for(lambda: len(fake.orders) == 2)
    assert first.status == "CANCELED"
    second = next(o for o in fake.orders.values() if o is not first)
    assert (second.order_type, second.session, second.quantity) == ("LIMIT", "PM", 3)
    # Recovery finds the replacement by symbol, side, quantity and time, and leaves
    # the cancelled order to the record that owns it.
    for _ in range(500):
        hedges = await engine.store.hedge_orders()
        if len(hedges) == 2 and all(h.broker_order_id for h in hedges):
            break
        await asyncio.sleep(0.02)
    assert {h.broker_order_id for h in hedges} == {str(first.order_id), str(second.order_id)}

    # 20:00 ends the PM order; Thursday's open hedges the rest at market.
    clock.advance(seconds=(ny(WEDNESDAY, 20, 1) - clock.now()).total_seconds())
    await wait_for(lambda: second.status == "EXPIRED" or len(fake.orders) > 2)
    fake.fill_prices["AAPL"] = Decimal("195")
    thursday_open = ny(date(2026, 3, 5), 9, 31)
    clock.advance(seconds=(thursday_open - clock.now()).total_seconds())
    await wait_for(lambda: engine.status.hedges_filled >= 1)
    market = [o for o in fake.orders.values() if o.order_type == "MARKET"]
    assert [(o.session, o.quantity, o.status) for o in market] == [("NORMAL", 3, "FILLED")]
    assert fake.position("AAPL") == 3
    # No market order was placed while the session was not regular.
    assert all(o.entered >= ny(date(2026, 3, 5), 9, 30) for o in market)

"""The market clock from Schwab's market-hours endpoint, closed days included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from st0x_schwab.executor import SchwabExecutor
from st0x_schwab.parsing import SchwabReplyError
from st0x_testing.fake_schwab import FakeSchwab, Fault, TestClock

from st0x_liquidity import AuthenticationRequiredError

NY = ZoneInfo("America/New_York")
Move = Callable[[datetime], None]


def ny(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


@pytest.fixture
async def at(authorized: SchwabExecutor, clock: TestClock) -> AsyncIterator[Move]:
    def move(when: datetime) -> None:
        clock.advance(seconds=(when - clock.now()).total_seconds())

    yield move


async def test_open_during_regular_hours(authorized: SchwabExecutor, at: Move) -> None:
    at(ny(2026, 3, 4, 11, 0))
    clock = await authorized.market_clock()
    assert clock.is_open and clock.next_close == ny(2026, 3, 4, 16, 0)


async def test_before_the_open_the_next_open_is_today(authorized: SchwabExecutor, at: Move) -> None:
    at(ny(2026, 3, 4, 8, 0))  # pre-market counts as closed
    clock = await authorized.market_clock()
    assert not clock.is_open and clock.next_open == ny(2026, 3, 4, 9, 30)


async def test_friday_evening_looks_past_the_weekend_and_a_holiday(
    authorized: SchwabExecutor, fake: FakeSchwab, at: Move
) -> None:
    fake.holidays.add(date(2026, 3, 9))  # make Monday a holiday
    at(ny(2026, 3, 6, 17, 0))
    clock = await authorized.market_clock()
    assert not clock.is_open
    assert clock.next_open == ny(2026, 3, 10, 9, 30)
    assert clock.next_open.astimezone(UTC) == datetime(2026, 3, 10, 13, 30, tzinfo=UTC)


async def test_weekend_closed_shape_does_not_crash(authorized: SchwabExecutor, at: Move) -> None:
    at(ny(2026, 3, 7, 12, 0))  # Saturday: {"equity": {"equity": {..., "isOpen": false}}}
    clock = await authorized.market_clock()
    assert not clock.is_open and clock.next_open == ny(2026, 3, 9, 9, 30)


async def test_lookahead_days_are_cached(
    authorized: SchwabExecutor, fake: FakeSchwab, at: Move
) -> None:
    at(ny(2026, 3, 7, 12, 0))
    await authorized.market_clock()
    first = sum(1 for _m, p in fake.requests if "/markets/" in p)
    await authorized.market_clock()
    second = sum(1 for _m, p in fake.requests if "/markets/" in p) - first
    assert second == 1  # only today is asked again


async def test_unreadable_market_hours_is_a_retryable_error(
    authorized: SchwabExecutor, fake: FakeSchwab
) -> None:
    fake.inject("market_hours", Fault("garbage"))
    with pytest.raises(SchwabReplyError):
        await authorized.market_clock()
    fake.inject("market_hours", Fault("status", 200, {"equity": {}}))
    with pytest.raises(SchwabReplyError):
        await authorized.market_clock()


async def test_without_a_login_the_clock_asks_for_schwab_auth(
    executor: SchwabExecutor, fake: FakeSchwab
) -> None:
    # No tokens stored: Schwab cannot be asked, and the clock says why instead of
    # guessing (a guessed clock made the engine believe the login was back).
    with pytest.raises(AuthenticationRequiredError, match="schwab auth"):
        await executor.market_clock()
    assert not any("/markets/" in p for _m, p in fake.requests)

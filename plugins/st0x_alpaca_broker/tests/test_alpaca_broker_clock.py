"""Market hours from the Broker API calendar, New York time, whatever the host zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from st0x_alpaca.wire import NEW_YORK
from st0x_testing.fake_alpaca_broker import FakeAlpacaBroker


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


TUESDAY = date(2026, 3, 10)


@pytest.mark.parametrize(
    "case",
    [
        (ny(TUESDAY, 8), False, ny(TUESDAY, 9, 30), ny(TUESDAY, 16)),
        (ny(TUESDAY, 10), True, ny(TUESDAY + timedelta(days=1), 9, 30), ny(TUESDAY, 16)),
        (ny(TUESDAY, 16), False, ny(TUESDAY + timedelta(days=1), 9, 30), None),
        (ny(date(2026, 3, 14), 12), False, ny(date(2026, 3, 16), 9, 30), ny(date(2026, 3, 16), 16)),
    ],
)
async def test_clock_from_calendar(
    broker_fake: FakeAlpacaBroker,
    make_broker_executor: Any,
    case: tuple[datetime, bool, datetime, datetime | None],
) -> None:
    now, is_open, next_open, next_close = case
    broker_fake.market_open = None
    broker_fake.now = lambda: now
    executor = await make_broker_executor(now=lambda: now)
    clock = await executor.market_clock()
    assert clock.is_open is is_open
    assert clock.next_open == next_open
    if next_close is not None:
        assert clock.next_close == next_close


async def test_holiday_is_skipped(broker_fake: FakeAlpacaBroker, make_broker_executor: Any) -> None:
    broker_fake.market_open = None
    broker_fake.holidays = {TUESDAY}
    now = ny(TUESDAY, 11)
    broker_fake.now = lambda: now
    executor = await make_broker_executor(now=lambda: now)
    clock = await executor.market_clock()
    assert not clock.is_open
    assert clock.next_open == ny(TUESDAY + timedelta(days=1), 9, 30)
    calendar_calls = [p for _m, p, _t in broker_fake.requests if p.startswith("/v1/calendar")]
    assert calendar_calls == ["/v1/calendar?start=2026-03-10&end=2026-03-20"]


async def test_forced_open_and_closed(broker_fake: FakeAlpacaBroker, make_broker_executor: Any) -> None:
    now = ny(TUESDAY, 12)
    broker_fake.now = lambda: now
    executor = await make_broker_executor(now=lambda: now)
    broker_fake.market_open = False
    assert not (await executor.market_clock()).is_open
    broker_fake.market_open = True
    assert (await executor.market_clock()).is_open

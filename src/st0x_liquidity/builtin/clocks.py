"""Market clocks for executors that have no venue to ask (dry-run, tests)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..domain.orders import MarketClock

NEW_YORK = ZoneInfo("America/New_York")
OPEN = time(9, 30)
CLOSE = time(16, 0)


def always_open(_now: datetime) -> MarketClock:
    return MarketClock(is_open=True)


def nyse_regular_hours(now: datetime) -> MarketClock:
    """Mon–Fri 09:30–16:00 New York time. Exchange holidays are not modelled."""
    local = now.astimezone(NEW_YORK)
    today_open = datetime.combine(local.date(), OPEN, NEW_YORK)
    today_close = datetime.combine(local.date(), CLOSE, NEW_YORK)
    weekday = local.weekday() < 5
    if weekday and today_open <= local < today_close:
        return MarketClock(
            True, next_open=_next_open(local + timedelta(days=1)), next_close=today_close
        )
    start = local if (weekday and local < today_open) else local + timedelta(days=1)
    next_open = _next_open(start)
    return MarketClock(
        False, next_open=next_open, next_close=datetime.combine(next_open.date(), CLOSE, NEW_YORK)
    )


def _next_open(day: datetime) -> datetime:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day.date(), OPEN, NEW_YORK)

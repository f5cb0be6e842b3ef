"""The fake and the core agree on the session at every moment.

The engine derives sessions from the calendar the executor reads
(``session_windows`` over ``trading_days``); the fake decides from its own
calendar whether an order may trade. If they disagreed, the engine would send
limits the fake holds, or wait while the fake trades. Three weeks with a
holiday (and its eve, which has no overnight session) and a half-day, at
thousands of seeded random moments plus every boundary and a second either side.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from st0x_alpaca import AlpacaTradingConfig, AlpacaTradingExecutor
from st0x_testing.fake_alpaca import NEW_YORK, FakeAlpacaTrading

from st0x_liquidity import Secret, Session, session_at, session_windows

from .conftest import FAST, KEY, SECRET  # type: ignore[import-not-found]

START, END = date(2026, 11, 16), date(2026, 12, 6)
THANKSGIVING, BLACK_FRIDAY = date(2026, 11, 26), date(2026, 11, 27)


@pytest.mark.parametrize("session_fields", [True, False])
async def test_fake_and_core_sessions_agree(
    fake: FakeAlpacaTrading, session_fields: bool
) -> None:
    fake.market_open = None
    fake.holidays.add(THANKSGIVING)
    fake.half_days[BLACK_FRIDAY] = time(13, 0)
    if not session_fields:
        # Without session_open/close the executor assumes no after-hours on a
        # half-day; the fake's calendar says the same.
        fake.calendar.half_day_session_close = time(13, 0)
    fake.calendar_session_fields = session_fields
    settings: dict[str, Any] = {
        "api_key": Secret(KEY), "api_secret": Secret(SECRET), "base_url": fake.base_url, **FAST,
    }
    executor = AlpacaTradingExecutor(AlpacaTradingConfig(**settings))
    try:
        days = await executor.trading_days(START - timedelta(days=1), END + timedelta(days=1))
    finally:
        await executor.close()
    windows = session_windows(days, overnight=True)
    everything = frozenset(Session)

    first = datetime.combine(START, time(0, 0), NEW_YORK).astimezone(UTC)
    span = (END - START).total_seconds()
    rng = random.Random(22)
    moments = [first + timedelta(seconds=rng.uniform(0, span)) for _ in range(3000)]
    for w in windows:
        if first <= w.start:
            moments += [w.start - timedelta(seconds=1), w.start, w.start + timedelta(seconds=1)]
    checked = 0
    for moment in moments:
        if moment >= first + timedelta(seconds=span):
            continue
        core, _next = session_at(windows, moment, everything)
        fake_session, _day = fake.calendar.session_at(moment)
        assert core.session.value == fake_session, moment.astimezone(NEW_YORK)
        checked += 1
    assert checked > 3000
    # The eve of the holiday has no overnight; the night after it does.
    eve = datetime.combine(THANKSGIVING - timedelta(days=1), time(22), NEW_YORK)
    after = datetime.combine(THANKSGIVING, time(22), NEW_YORK)
    assert session_at(windows, eve.astimezone(UTC), everything)[0].session is Session.CLOSED
    assert session_at(windows, after.astimezone(UTC), everything)[0].session is Session.OVERNIGHT

"""Session windows and limit prices (domain/sessions.py): properties and the calendar's edge cases."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.sessions import (
    NEW_YORK,
    Session,
    SymbolEligibility,
    TradingDay,
    at_new_york,
    enabled_sessions,
    hedgeable_seconds,
    limit_tick,
    offset_limit,
    round_limit,
    rule_calendar,
    session_at,
    session_windows,
)

ALL = frozenset(Session) - {Session.CLOSED}
EXTENDED = frozenset({Session.REGULAR, Session.PRE, Session.POST})
REGULAR = frozenset({Session.REGULAR})


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NEW_YORK).astimezone(UTC)


calendars = st.builds(
    lambda start, n, holidays, halves: rule_calendar(
        start,
        start + timedelta(days=n),
        holidays={start + timedelta(days=h) for h in holidays},
        half_days={start + timedelta(days=h) for h in halves},
    ),
    st.dates(date(2024, 1, 1), date(2028, 12, 1)),
    st.integers(0, 40),
    st.sets(st.integers(0, 40), max_size=8),
    st.sets(st.integers(0, 40), max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(calendars, st.booleans())
def test_windows_never_overlap_and_are_sorted(days: list[TradingDay], overnight: bool) -> None:
    windows = session_windows(days, overnight=overnight)
    for w in windows:
        assert w.start < w.end
        assert w.session is not Session.CLOSED
    for a, b in itertools.pairwise(windows):
        assert a.end <= b.start, (a, b)


@settings(max_examples=200, deadline=None)
@given(calendars)
def test_overnight_belongs_to_the_next_trading_day(days: list[TradingDay]) -> None:
    trading = {d.date for d in days}
    nights = [w for w in session_windows(days, overnight=True) if w.session is Session.OVERNIGHT]
    assert len(nights) == len(trading)  # one per trading date, none for other dates
    for w in nights:
        end_ny = w.end.astimezone(NEW_YORK)
        start_ny = w.start.astimezone(NEW_YORK)
        assert end_ny.time() == time(4, 0)
        assert end_ny.date() in trading
        assert start_ny == datetime.combine(
            end_ny.date() - timedelta(days=1), time(20, 0), tzinfo=NEW_YORK
        )


@settings(max_examples=200, deadline=None)
@given(calendars, st.integers(0, 45 * 24 * 60), st.sampled_from([ALL, EXTENDED, REGULAR]))
def test_session_at_finds_the_window_and_the_next(
    days: list[TradingDay], minutes: int, enabled: frozenset[Session]
) -> None:
    windows = session_windows(days, overnight=Session.OVERNIGHT in enabled)
    base = days[0].regular_open - timedelta(days=2) if days else ny(2025, 1, 1, 0)
    when = base + timedelta(minutes=minutes)
    current, following = session_at(windows, when, enabled)
    assert current.start <= when < current.end
    inside = [w for w in windows if w.session in enabled and w.contains(when)]
    if inside:
        assert current == inside[0]
    else:
        assert current.session is Session.CLOSED
        assert not any(
            w.session in enabled and w.start < current.end and w.end > current.start
            for w in windows
        )
    later = [w for w in windows if w.session in enabled and w.start >= current.end]
    assert following == (later[0] if later else None)


def test_a_normal_week_with_overnight() -> None:
    days = rule_calendar(date(2026, 3, 2), date(2026, 3, 6))  # Mon-Fri, EST
    windows = session_windows(days, overnight=True)
    kinds = [w.session for w in windows[:5]]
    assert kinds == [
        Session.OVERNIGHT,
        Session.PRE,
        Session.REGULAR,
        Session.POST,
        Session.OVERNIGHT,
    ]
    assert windows[0].start == ny(2026, 3, 1, 20)  # Sunday 20:00
    assert windows[0].end == ny(2026, 3, 2, 4)
    assert windows[-1].session is Session.POST  # Friday after-hours; no Friday night
    assert windows[-1].end == ny(2026, 3, 6, 20)
    week = (ny(2026, 3, 1, 0), ny(2026, 3, 8, 0))
    assert hedgeable_seconds(windows, REGULAR, *week) / 3600 == 5 * 6.5
    assert hedgeable_seconds(windows, EXTENDED, *week) / 3600 == 5 * 16
    assert hedgeable_seconds(windows, ALL, *week) / 3600 == 5 * 24  # 168 - 48


def test_no_overnight_before_a_full_holiday_and_one_after_it() -> None:
    thanksgiving = date(2026, 11, 26)
    days = rule_calendar(
        date(2026, 11, 23),
        date(2026, 11, 30),
        holidays={thanksgiving},
        half_days={date(2026, 11, 27)},
    )
    nights = [w for w in session_windows(days, overnight=True) if w.session is Session.OVERNIGHT]
    starts = [w.start for w in nights]
    assert ny(2026, 11, 25, 20) not in starts  # Wed night belongs to the holiday: closed
    assert ny(2026, 11, 26, 20) in starts  # Thu night belongs to Friday: open
    friday = next(d for d in days if d.date == date(2026, 11, 27))
    assert friday.regular_close == ny(2026, 11, 27, 13)  # the half-day comes from the calendar
    current, following = session_at(
        session_windows(days, overnight=True), ny(2026, 11, 26, 12), ALL
    )
    assert current.session is Session.CLOSED
    assert following is not None and following.start == ny(2026, 11, 26, 20)


def test_overnight_is_clipped_to_extended_hours_that_run_late() -> None:
    d1, d2 = date(2026, 3, 2), date(2026, 3, 3)
    days = [
        TradingDay(
            d1, ny(2026, 3, 2, 9, 30), ny(2026, 3, 2, 16), ny(2026, 3, 2, 4), ny(2026, 3, 2, 21)
        ),
        TradingDay(
            d2, ny(2026, 3, 3, 9, 30), ny(2026, 3, 3, 16), ny(2026, 3, 3, 3), ny(2026, 3, 3, 20)
        ),
    ]
    night = [w for w in session_windows(days, overnight=True) if w.session is Session.OVERNIGHT][1]
    assert (night.start, night.end) == (ny(2026, 3, 2, 21), ny(2026, 3, 3, 3))


def test_dst_switch_keeps_new_york_wall_time() -> None:
    days = rule_calendar(date(2026, 3, 9), date(2026, 3, 9))  # Monday after the spring switch
    night = session_windows(days, overnight=True)[0]
    assert night.start == at_new_york(date(2026, 3, 8), time(20, 0))
    assert (night.end - night.start) == timedelta(hours=8)
    assert night.end.hour == 8  # 04:00 EDT = 08:00 UTC


def test_enabled_sessions_follow_opt_ins_and_eligibility() -> None:
    yes = SymbolEligibility(extended=True, overnight=True)
    assert enabled_sessions(extended=False, overnight=True, eligibility=yes) == REGULAR
    assert enabled_sessions(extended=True, overnight=False, eligibility=yes) == EXTENDED
    assert enabled_sessions(extended=True, overnight=True, eligibility=yes) == ALL
    halted = SymbolEligibility(extended=True, overnight=True, overnight_halted=True)
    assert enabled_sessions(extended=True, overnight=True, eligibility=halted) == EXTENDED
    assert enabled_sessions(extended=True, overnight=True, eligibility=None) == REGULAR
    no_eh = SymbolEligibility(extended=False, overnight=True)
    assert enabled_sessions(extended=True, overnight=True, eligibility=no_eh) == REGULAR


def test_session_extended_flag() -> None:
    assert {s for s in Session if s.extended} == {Session.PRE, Session.POST, Session.OVERNIGHT}


prices = st.decimals(Decimal("0.0002"), Decimal("100000"), places=8, allow_nan=False)


@given(prices, st.sampled_from(list(Direction)))
def test_round_limit_is_on_the_grid_and_towards_crossing(price: Decimal, side: Direction) -> None:
    rounded = round_limit(price, side)
    tick = limit_tick(rounded)
    assert rounded % tick == 0
    assert -rounded.as_tuple().exponent == (2 if rounded >= 1 else 4)  # type: ignore[operator]
    if side is Direction.BUY:
        assert price <= rounded < price + limit_tick(price)
    else:
        assert price - limit_tick(price) < rounded <= price


@pytest.mark.parametrize(
    ("price", "side", "expected"),
    [
        ("290.123", Direction.BUY, "290.13"),
        ("290.123", Direction.SELL, "290.12"),
        ("0.99999", Direction.BUY, "1.00"),
        ("0.99999", Direction.SELL, "0.9999"),
        ("1", Direction.SELL, "1.00"),
        ("0.123456", Direction.BUY, "0.1235"),
    ],
)
def test_round_limit_examples(price: str, side: Direction, expected: str) -> None:
    assert str(round_limit(Decimal(price), side)) == expected


def test_round_limit_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        round_limit(Decimal(0), Direction.BUY)
    with pytest.raises(ValueError, match="zero"):
        round_limit(Decimal("0.00001"), Direction.SELL)


def test_offset_moves_towards_crossing() -> None:
    assert offset_limit(Decimal(100), Direction.BUY, Decimal(50)) == Decimal("100.50")
    assert offset_limit(Decimal(100), Direction.SELL, Decimal(50)) == Decimal("99.50")

"""The exchange calendar behind the brokers' fakes: sessions, holidays, half-days.

(``overrides`` replace a date's hours entirely, weekends included.)

A weekday is a trading day unless it is in ``holidays``. Regular hours are
09:30-16:00 New York (a ``half_days`` entry gives the early close, e.g. 13:00);
the extended day runs ``session_open``-``session_close`` (04:00-20:00 as in
Alpaca's calendar; on a half-day ``half_day_session_close``, 17:00 by default,
as Alpaca's calendar showed for past half-days; the reference notes the
after-hours session may not run at all on half-days, so tests can set it to
the early close). Overnight for trading day D is 20:00 of the calendar day
before D to D's ``session_open`` (Alpaca: the overnight session belongs to the
next trade date), clipped to the previous trading day's ``session_close``; so
there is none the night before a holiday and none on Friday night.

Times are tz-aware; sessions are named ``regular``, ``pre``, ``post``,
``overnight`` and ``closed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs

NEW_YORK = ZoneInfo("America/New_York")
SESSIONS = ("regular", "pre", "post", "overnight", "closed")
OVERNIGHT_START = time(20, 0)
MAX_GAP = 15
"""Days searched for the next trading day (longer closures are not simulated)."""


@attrs.frozen
class FakeDay:
    """One trading day; every time tz-aware (New York)."""

    date: date
    open: datetime
    close: datetime
    session_open: datetime
    session_close: datetime


@attrs.define
class FakeCalendar:
    """Settable holidays and half-days; everything else follows from them."""

    holidays: set[date] = attrs.field(factory=set)
    half_days: dict[date, time] = attrs.field(factory=dict)
    """Trading day -> early regular close."""
    regular_open: time = time(9, 30)
    regular_close: time = time(16, 0)
    session_open: time = time(4, 0)
    session_close: time = time(20, 0)
    half_day_session_close: time = time(17, 0)
    overrides: dict[date, FakeDay] = attrs.field(factory=dict)
    """Days with hours of their own (any weekday): a test that runs the bot in a child
    process, on the real clock, places today's sessions around the current time."""

    def day(self, day: date) -> FakeDay | None:
        if day in self.overrides:
            return self.overrides[day]
        if day.weekday() >= 5 or day in self.holidays:
            return None

        def at(moment: time) -> datetime:
            return datetime.combine(day, moment, NEW_YORK)

        early = self.half_days.get(day)
        return FakeDay(
            date=day,
            open=at(self.regular_open),
            close=at(early or self.regular_close),
            session_open=at(self.session_open),
            session_close=at(self.half_day_session_close if early else self.session_close),
        )

    def override(
        self, day: date, *, session_open: time, open: time, close: time, session_close: time
    ) -> FakeDay:
        """Give ``day`` these New York hours (and make it a trading day)."""

        def at(moment: time) -> datetime:
            return datetime.combine(day, moment, NEW_YORK)

        found = FakeDay(day, at(open), at(close), at(session_open), at(session_close))
        self.overrides[day] = found
        return found

    def days(self, start: date, end: date) -> list[FakeDay]:
        """Trading days in ``[start, end]``."""
        result = []
        day = start
        while day <= end:
            found = self.day(day)
            if found is not None:
                result.append(found)
            day += timedelta(days=1)
        return result

    def following(self, when: datetime) -> Iterator[FakeDay]:
        """Trading days from the New York date of ``when`` on (the day before included,
        for an overnight that started yesterday)."""
        first = when.astimezone(NEW_YORK).date() - timedelta(days=1)
        for offset in range(MAX_GAP + 2):
            found = self.day(first + timedelta(days=offset))
            if found is not None:
                yield found

    def previous(self, day: date) -> FakeDay | None:
        for offset in range(1, MAX_GAP + 1):
            found = self.day(day - timedelta(days=offset))
            if found is not None:
                return found
        return None

    def overnight(self, day: FakeDay) -> tuple[datetime, datetime]:
        """The overnight window of trading day ``day`` (may be empty: start >= end)."""
        start = datetime.combine(day.date - timedelta(days=1), OVERNIGHT_START, NEW_YORK)
        before = self.previous(day.date)
        if before is not None and before.session_close > start:
            start = before.session_close
        return start, day.session_open

    def session_at(self, when: datetime) -> tuple[str, FakeDay | None]:
        """The session at ``when`` and the trading day it belongs to (None: closed)."""
        for day in self.following(when):
            if day.session_close <= when:
                continue
            if when >= day.session_open:
                if when < day.open:
                    return "pre", day
                if when < day.close:
                    return "regular", day
                return "post", day
            start, end = self.overnight(day)
            if start <= when < end:
                return "overnight", day
            return "closed", None
        return "closed", None

    def trade_date(self, when: datetime, *, extended: bool) -> FakeDay | None:
        """The trading day an order entered at ``when`` belongs to: the first whose
        end (``session_close`` when ``extended``, else the regular close) is later."""
        for day in self.following(when):
            end = day.session_close if extended else day.close
            if end > when:
                return day
        return None

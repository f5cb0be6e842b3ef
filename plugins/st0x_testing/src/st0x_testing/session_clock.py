"""A "now" the brokers' fakes share and tests can move.

Each fake reads the time from one :class:`SessionClock`. By default it follows a
source (the real clock, or a callable the test passes in); ``set`` freezes it at
a moment and ``advance`` moves it on, so a test can walk an order from
pre-market through the regular session to its 20:00 expiry without waiting.
A test that runs the bot in a child process moves the clock over HTTP instead:
:func:`control_clock` answers ``POST /_control/clock`` with ``{"now": iso}``
or ``{"advance": seconds}`` (no authentication: the fakes only listen on
127.0.0.1 and are never a real broker).

:class:`ClockAndCalendar` gives each fake the same ``now`` / ``holidays`` /
``half_days`` attributes over its clock and :class:`FakeCalendar`, so a test moves
time and closes days in the same way whichever broker it fakes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from aiohttp import web

from .market_calendar import FakeCalendar

Now = Callable[[], datetime]


def _real_now() -> datetime:
    return datetime.now(UTC)


class SessionClock:
    """Follows ``source`` until ``set``; ``advance`` shifts whichever it reads."""

    def __init__(self, source: Now | None = None) -> None:
        self._source: Now = source or _real_now
        self._fixed: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        base = self._fixed if self._fixed is not None else self._source()
        return base + self._offset

    def set(self, moment: datetime) -> None:
        """Freeze the clock at ``moment`` (timezone-aware)."""
        if moment.tzinfo is None:
            raise ValueError("the session clock needs a timezone-aware time")
        self._fixed = moment.astimezone(UTC)
        self._offset = timedelta(0)

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        """Move on by ``seconds`` (and/or ``timedelta`` keywords: ``hours=2``)."""
        self._offset += timedelta(seconds=seconds, **delta)

    def follow(self, source: Now | None = None) -> None:
        """Follow ``source`` (the real clock when None) again, forgetting ``set``."""
        self._source = source or _real_now
        self._fixed = None
        self._offset = timedelta(0)


class ClockAndCalendar:
    """``now``, ``holidays`` and ``half_days`` of a fake over its ``clock`` and ``calendar``.

    A mixin: the fake sets both attributes in its ``__init__``."""

    clock: SessionClock
    calendar: FakeCalendar

    @property
    def now(self) -> Now:
        """The fake's clock (``fake.now = fn`` makes the clock follow ``fn``)."""
        return self.clock.now

    @now.setter
    def now(self, source: Now) -> None:
        self.clock.follow(source)

    @property
    def holidays(self) -> set[date]:
        return self.calendar.holidays

    @holidays.setter
    def holidays(self, days: set[date]) -> None:
        self.calendar.holidays = set(days)

    @property
    def half_days(self) -> dict[date, dtime]:
        """Trading day -> early close (regular hours end then)."""
        return self.calendar.half_days


def parse_control(body: Any) -> tuple[datetime | None, float | None]:
    """``{"now": iso}`` and/or ``{"advance": seconds}``; ValueError for anything else."""
    if not isinstance(body, dict) or not ({"now", "advance"} & set(body)):
        raise ValueError('expected {"now": "<ISO 8601 time>"} or {"advance": <seconds>}')
    moment: datetime | None = None
    if "now" in body:
        if not isinstance(body["now"], str):
            raise ValueError("now must be an ISO 8601 string")
        moment = datetime.fromisoformat(body["now"].replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("now needs a timezone")
    step: float | None = None
    if "advance" in body:
        raw = body["advance"]
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError("advance must be a number of seconds")
        step = float(raw)
    return moment, step


def control_clock(
    clock: SessionClock, on_change: Callable[[dict[str, Any]], None] | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``POST /_control/clock`` handler for ``clock``; answers ``{"now": iso}``.

    ``on_change`` receives the request body after the clock moved (a fake reads
    its own extra keys there, such as Alpaca's ``market_open``)."""

    async def handle(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            moment, step = parse_control(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return web.json_response({"message": str(exc)}, status=400)
        if moment is not None:
            clock.set(moment)
        if step is not None:
            clock.advance(step)
        if on_change is not None:
            on_change(body)
        return web.json_response({"now": clock.now().isoformat()})

    return handle

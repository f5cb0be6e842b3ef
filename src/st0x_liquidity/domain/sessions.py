"""Trading sessions: when a symbol can be hedged, and at what kind of price.

Pure functions over a broker calendar (:class:`TradingDay` per trading date,
holidays and half-days included, as the broker reports them). The engine asks
the executor for the calendar and derives the session windows here, so the
rules (overnight belongs to the next trade date, no window overlaps another,
limits on the sub-penny grid) live in one tested place and not in each
executor.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

import attrs

from .fills import Direction

NEW_YORK = ZoneInfo("America/New_York")
"""The US equity market's clock: every session boundary is New York wall time."""

OVERNIGHT_START = time(20, 0)
OVERNIGHT_END = time(4, 0)

_FAR_FUTURE = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)


class Session(enum.Enum):
    """The kind of trading a venue offers at some moment."""

    REGULAR = "regular"
    PRE = "pre"
    POST = "post"
    OVERNIGHT = "overnight"
    CLOSED = "closed"

    @property
    def extended(self) -> bool:
        """Outside regular hours but open: limit orders only."""
        return self in (Session.PRE, Session.POST, Session.OVERNIGHT)


@attrs.frozen
class TradingDay:
    """One trading date of the broker's calendar (all times tz-aware UTC).

    Half-days have an early ``regular_close``; ``extended_open`` /
    ``extended_close`` are the pre-market start and after-hours end the broker
    reports (None when it reports none: no extended session that day).
    """

    date: date
    regular_open: datetime
    regular_close: datetime
    extended_open: datetime | None = None
    extended_close: datetime | None = None


@attrs.frozen
class SessionWindow:
    """``[start, end)`` in which ``session`` is the one on offer."""

    session: Session
    start: datetime
    end: datetime

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@attrs.frozen
class SymbolEligibility:
    """What the broker allows for one symbol outside regular hours.

    Alpaca: ``extended`` = asset attribute ``fractional_eh_enabled`` (fractional
    quantities outside regular hours), ``overnight`` = ``overnight_tradable``,
    ``overnight_halted`` = ``overnight_halted`` (tradable but blocked now).
    """

    extended: bool
    overnight: bool
    overnight_halted: bool = False


def at_new_york(day: date, wall: time) -> datetime:
    """``wall`` o'clock in New York on ``day``, as UTC."""
    return datetime.combine(day, wall, tzinfo=NEW_YORK).astimezone(UTC)


def _day_windows(day: TradingDay) -> list[SessionWindow]:
    windows: list[SessionWindow] = []
    if day.extended_open is not None and day.extended_open < day.regular_open:
        windows.append(SessionWindow(Session.PRE, day.extended_open, day.regular_open))
    if day.regular_open < day.regular_close:
        windows.append(SessionWindow(Session.REGULAR, day.regular_open, day.regular_close))
    if day.extended_close is not None and day.extended_close > day.regular_close:
        windows.append(SessionWindow(Session.POST, day.regular_close, day.extended_close))
    return windows


def session_windows(days: Sequence[TradingDay], *, overnight: bool) -> list[SessionWindow]:
    """Every session window of ``days``, sorted, none overlapping another.

    The overnight window of trading day D is [20:00 New York of the calendar day
    before D, 04:00 New York of D): it belongs to D's trade date, so there is
    none for a date not in the calendar (the night before a full-close holiday)
    and there is one on the night after it. It is clipped to the pre- and
    after-hours windows around it, so it never overlaps them.
    """
    ordered = sorted({d.date: d for d in days}.values(), key=lambda d: d.date)
    day_windows = sorted(
        (w for d in ordered for w in _day_windows(d)), key=lambda w: (w.start, w.end)
    )
    windows: list[SessionWindow] = []
    for w in day_windows:  # a broker calendar that overlaps itself: keep the earlier day
        if windows and w.start < windows[-1].end:
            if w.end > windows[-1].end:
                windows.append(attrs.evolve(w, start=windows[-1].end))
            continue
        windows.append(w)
    if overnight:
        nights: list[SessionWindow] = []
        for d in ordered:
            start = at_new_york(d.date - timedelta(days=1), OVERNIGHT_START)
            end = at_new_york(d.date, OVERNIGHT_END)
            for w in windows:  # clip to the day sessions on either side
                if w.start < end and w.end > start:
                    if w.start <= start:
                        start = w.end
                    else:
                        end = min(end, w.start)
            if start < end:
                nights.append(SessionWindow(Session.OVERNIGHT, start, end))
        windows = sorted([*windows, *nights], key=lambda w: (w.start, w.end))
    return windows


def session_at(
    windows: Sequence[SessionWindow], when: datetime, enabled: frozenset[Session]
) -> tuple[SessionWindow, SessionWindow | None]:
    """The window ``when`` falls in, and the next enabled window after it.

    Only windows whose session is in ``enabled`` count; when none of them holds
    ``when``, the current window is a CLOSED one spanning the gap (from the end
    of the previous enabled window, or ``when`` if none is known, to the start
    of the next, or far in the future if none is known).
    """
    usable = sorted((w for w in windows if w.session in enabled), key=lambda w: w.start)
    starts = [w.start for w in usable]
    i = bisect.bisect_right(starts, when)
    if i > 0 and usable[i - 1].contains(when):
        return usable[i - 1], usable[i] if i < len(usable) else None
    following = usable[i] if i < len(usable) else None
    gap_start = usable[i - 1].end if i > 0 else when
    gap_end = following.start if following is not None else _FAR_FUTURE
    return SessionWindow(Session.CLOSED, min(gap_start, when), gap_end), following


def enabled_sessions(
    *, extended: bool, overnight: bool, eligibility: SymbolEligibility | None
) -> frozenset[Session]:
    """The sessions a symbol may be hedged in: its opt-ins, cut to what the broker allows.

    Regular hours are always on. Without eligibility information (the broker
    did not say) only regular hours are used.
    """
    sessions = {Session.REGULAR}
    if eligibility is not None and extended and eligibility.extended:
        sessions |= {Session.PRE, Session.POST}
        if overnight and eligibility.overnight and not eligibility.overnight_halted:
            sessions.add(Session.OVERNIGHT)
    return frozenset(sessions)


def hedgeable_seconds(
    windows: Iterable[SessionWindow], enabled: frozenset[Session], start: datetime, end: datetime
) -> float:
    """Seconds of ``[start, end)`` that fall in an enabled window."""
    total = 0.0
    for w in windows:
        if w.session in enabled:
            lo, hi = max(w.start, start), min(w.end, end)
            if lo < hi:
                total += (hi - lo).total_seconds()
    return total


# -- limit prices ------------------------------------------------------------------

PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")


def limit_tick(price: Decimal) -> Decimal:
    """The price grid of a limit: 0.01 at or above $1, 0.0001 below (sub-penny rule)."""
    return PENNY if price >= 1 else SUB_PENNY


def round_limit(price: Decimal, side: Direction) -> Decimal:
    """``price`` on the grid of the resulting price: buys round up, sells down.

    Rounding towards crossing never makes a limit less marketable than the
    offset asked for. Raises ValueError for a price that is not positive or a
    sell that would round to zero.
    """
    if not price.is_finite() or price <= 0:
        raise ValueError(f"a limit price must be positive, got {price}")
    rounding = ROUND_CEILING if side is Direction.BUY else ROUND_FLOOR
    rounded = price.quantize(limit_tick(price), rounding=rounding)
    if rounded <= 0:
        raise ValueError(f"limit price {price} rounds to zero")
    return rounded.quantize(limit_tick(rounded))


def offset_limit(reference: Decimal, side: Direction, offset_bps: Decimal) -> Decimal:
    """``reference`` moved ``offset_bps`` towards crossing (buys up, sells down), on the grid."""
    factor = Decimal(1) + Decimal(side.sign) * offset_bps / Decimal(10_000)
    return round_limit(reference * factor, side)


# -- a calendar from rules (dry-run, tests, benchmarks) ----------------------------


def rule_calendar(
    start: date,
    end: date,
    *,
    holidays: Iterable[date] = (),
    half_days: Iterable[date] = (),
) -> list[TradingDay]:
    """Weekdays in ``[start, end]`` minus ``holidays``: regular 09:30-16:00, extended
    04:00-20:00 New York; ``half_days`` close at 13:00 with after-hours to 17:00.

    For the dry-run broker and simulations only: real executors read the
    broker's calendar.
    """
    closed, short = set(holidays), set(half_days)
    days: list[TradingDay] = []
    d = start
    while d <= end:
        if d.weekday() < 5 and d not in closed:
            half = d in short
            days.append(
                TradingDay(
                    d,
                    at_new_york(d, time(9, 30)),
                    at_new_york(d, time(13, 0) if half else time(16, 0)),
                    at_new_york(d, time(4, 0)),
                    at_new_york(d, time(17, 0) if half else time(20, 0)),
                )
            )
        d += timedelta(days=1)
    return days

"""The calendar the engine keeps for ``positions``: round trip and per-symbol answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from st0x_liquidity.domain.calendar_record import CalendarRecord
from st0x_liquidity.domain.sessions import NEW_YORK, SymbolEligibility, rule_calendar


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NEW_YORK).astimezone(UTC)


SATURDAY = ny(2026, 3, 7, 12)


def record(loaded_at: datetime = SATURDAY, wall_at: datetime = SATURDAY) -> CalendarRecord:
    return CalendarRecord(
        loaded_at,
        wall_at,
        True,
        tuple(rule_calendar(date(2026, 3, 2), date(2026, 3, 16), half_days=[date(2026, 3, 13)])),
        {
            "AAPL": SymbolEligibility(extended=True, overnight=True),
            "TSLA": SymbolEligibility(extended=True, overnight=True, overnight_halted=True),
        },
    )


def test_the_record_reads_back_as_written() -> None:
    kept = record()
    assert CalendarRecord.from_json(kept.to_json()) == kept


def test_at_the_weekend_each_symbol_shows_its_own_next_hedge_time() -> None:
    kept = record()
    aapl = kept.symbol_session("AAPL", opted_in=True, overnight=True, now=SATURDAY)
    assert (aapl["session"], aapl["next_session"]) == ("closed", "overnight")
    assert aapl["next_hedge_at"] == ny(2026, 3, 8, 20).isoformat()  # Sunday 20:00
    tsla = kept.symbol_session("TSLA", opted_in=True, overnight=True, now=SATURDAY)
    assert tsla["next_hedge_at"] == ny(2026, 3, 9, 4).isoformat()  # halted overnight: pre
    msft = kept.symbol_session("MSFT", opted_in=False, overnight=False, now=SATURDAY)
    assert (msft["next_session"], msft["enabled"]) == ("regular", ["regular"])
    assert msft["next_hedge_at"] == ny(2026, 3, 9, 9, 30).isoformat()
    assert msft["stale"] is False


def test_an_open_session_says_now_and_until_when() -> None:
    kept = record()
    now = ny(2026, 3, 13, 13, 30)  # a half-day's after-hours, to 17:00
    view = kept.symbol_session("AAPL", opted_in=True, overnight=False, now=now)
    assert (view["session"], view["next_hedge_at"]) == ("post", now.isoformat())
    assert view["until"] == ny(2026, 3, 13, 17).isoformat()
    assert view["stale"] is True  # read six days before: the engine is not refreshing it


def test_a_simulated_session_clock_carries_over_to_the_reader() -> None:
    wall = datetime(2026, 12, 7, 8, tzinfo=UTC)
    kept = record(loaded_at=SATURDAY, wall_at=wall)
    assert kept.session_time(wall + timedelta(minutes=5)) == SATURDAY + timedelta(minutes=5)

"""The session tracker's last calendar, as kept in the store for offline commands.

``positions`` runs without a broker connection, yet the operator wants each
symbol's session now and when it can next be hedged. The running engine
keeps the calendar and the eligibility it last read (a plugin blob); this
module encodes it and answers per symbol from it, with the same pure rules the
engine uses (:mod:`.sessions`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import attrs

from .sessions import (
    Session,
    SymbolEligibility,
    TradingDay,
    enabled_sessions,
    session_at,
    session_windows,
)

NAMESPACE = "extended_hours"
KEY = "calendar"


@attrs.frozen
class CalendarRecord:
    """The calendar and eligibility the engine read at ``loaded_at`` (its session time).

    ``wall_at`` is the wall clock at that moment: a reader adds the difference
    to its own wall clock, so a simulated session clock (dry-run) reads right.
    """

    loaded_at: datetime
    wall_at: datetime
    overnight_available: bool
    days: tuple[TradingDay, ...]
    eligibility: Mapping[str, SymbolEligibility]

    def to_json(self) -> bytes:
        def t(when: datetime | None) -> str | None:
            return None if when is None else when.isoformat()

        return json.dumps(
            {
                "loaded_at": self.loaded_at.isoformat(),
                "wall_at": self.wall_at.isoformat(),
                "overnight_available": self.overnight_available,
                "days": [
                    [
                        d.date.isoformat(),
                        t(d.regular_open),
                        t(d.regular_close),
                        t(d.extended_open),
                        t(d.extended_close),
                    ]
                    for d in self.days
                ],
                "eligibility": {
                    s: [e.extended, e.overnight, e.overnight_halted]
                    for s, e in sorted(self.eligibility.items())
                },
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CalendarRecord:
        """Raises ValueError (or KeyError/TypeError) on a record it cannot read."""
        data = json.loads(raw)

        def t(text: str | None) -> datetime | None:
            return None if text is None else datetime.fromisoformat(text)

        days = tuple(
            TradingDay(
                date.fromisoformat(d),
                datetime.fromisoformat(ro),
                datetime.fromisoformat(rc),
                t(eo),
                t(ec),
            )
            for d, ro, rc, eo, ec in data["days"]
        )
        return cls(
            datetime.fromisoformat(data["loaded_at"]),
            datetime.fromisoformat(data["wall_at"]),
            bool(data["overnight_available"]),
            days,
            {
                s: SymbolEligibility(bool(e[0]), bool(e[1]), bool(e[2]))
                for s, e in data["eligibility"].items()
            },
        )

    def session_time(self, wall_now: datetime) -> datetime:
        """The session clock now, from the reader's wall clock."""
        return wall_now + (self.loaded_at - self.wall_at)

    def symbol_session(
        self, ticker: str, *, opted_in: bool, overnight: bool, now: datetime
    ) -> dict[str, Any]:
        """``ticker``'s session at ``now`` and the next time it can be hedged.

        ``opted_in`` / ``overnight``: the symbol's ``[extended_hours]`` opt-ins.
        """
        enabled = (
            enabled_sessions(
                extended=True,
                overnight=overnight and self.overnight_available,
                eligibility=self.eligibility.get(ticker),
            )
            if opted_in
            else frozenset({Session.REGULAR})
        )
        windows = session_windows(self.days, overnight=Session.OVERNIGHT in enabled)
        current, following = session_at(windows, now, enabled)
        open_now = current.session is not Session.CLOSED
        known_end = open_now or following is not None
        return {
            "session": current.session.value,
            "until": current.end.isoformat() if known_end else None,
            "next_session": None if following is None else following.session.value,
            "next_hedge_at": (
                now.isoformat()
                if open_now
                else None
                if following is None
                else following.start.isoformat()
            ),
            "enabled": sorted(s.value for s in enabled),
            "calendar_loaded_at": self.loaded_at.isoformat(),
            "stale": now - self.loaded_at > timedelta(days=2),
        }

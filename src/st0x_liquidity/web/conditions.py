"""Hysteresis for what ``/health`` and the alerts report: raise at once, clear slowly.

A condition that comes and goes (an order lookup that keeps failing between
successful calls, a node that answers one request in three) must read as one
problem that stays, not as a status flipping every few seconds. A
:class:`Latch` reports a problem from the first bad observation and keeps
reporting it until the condition has been observed good ``clear_count`` times
in a row *and* for at least ``clear_after`` seconds since the last bad one.

Start-up is the exception (``lenient``): a check that has never passed yet (the
broker not reached, its first login refused) clears at its first good
observation, because there is no flapping to hide and the bot should become
ready as soon as it is.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import attrs

CLEAR_COUNT = 3
"""Consecutive good observations a held problem needs before it clears."""


@attrs.define
class Latch:
    clear_after: float
    clear_count: int = CLEAR_COUNT
    lenient: bool = True
    """Clear at once if the condition has never been observed good before."""
    problem: str | None = None
    """The problem being reported (the latest text of it), or None."""
    since: datetime | None = None
    """When the reported problem was first observed (wall clock)."""
    last_bad: float = 0.0
    good_seen: int = 0
    passed_once: bool = False

    def observe(self, problem: str | None, now: float | None = None) -> str | None:
        """Feed one observation; return what to report."""
        now = time.monotonic() if now is None else now
        if problem is not None:
            if self.problem is None:
                self.since = datetime.now(UTC)
            self.problem = problem
            self.last_bad = now
            self.good_seen = 0
            return problem
        if self.problem is None:
            self.passed_once = True
            return None
        self.good_seen += 1
        start_up = self.lenient and not self.passed_once
        if start_up or (
            self.good_seen >= self.clear_count and now - self.last_bad >= self.clear_after
        ):
            self.problem = self.since = None
            self.good_seen = 0
            self.passed_once = True
            return None
        return self.problem

    @property
    def recovering(self) -> bool:
        """A problem is held although the last observation was good."""
        return self.problem is not None and self.good_seen > 0

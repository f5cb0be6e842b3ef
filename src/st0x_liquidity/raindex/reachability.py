"""Whether the raindex walk can reach its node, judged by the walk's own requests.

The dashboard's ``/health`` and status read this through
:attr:`.source.RaindexSource.problem`. It is kept apart from the walk because it is
pure bookkeeping of times (when a request started, when the node last answered,
since when it has been failing) and the rule that turns them into one line.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import attrs

from .node import NodeUnavailable


@attrs.define
class Reachability:
    """The walk's requests in flight, the node's last answer, and since when it is down."""

    unreachable_after: float
    last_error: str | None = None
    _down_since: float | None = None
    _in_flight: dict[int, float] = attrs.field(factory=dict)
    _request_ids: int = 0
    _last_contact: float | None = None

    def problem(self) -> str | None:
        """Says "node unreachable: …" while the walk cannot reach the node, else None.

        Reachability is judged by the walk's own requests (enrichment is left out: a
        node may sit on traces and still serve logs): the source has been failing to
        connect or to get answers for longer than ``unreachable_after``, or one of its
        requests has waited that long for an answer (a frozen node keeps its sockets
        open and never answers). A reconnect that succeeds at once is not a problem.
        """
        now = time.monotonic()
        limit = self.unreachable_after
        waiting = min(self._in_flight.values(), default=None)
        if waiting is not None and now - waiting > limit:
            return f"node unreachable: no answer for {now - waiting:.0f}s"
        if self._down_since is not None and now - self._down_since > limit:
            cause = f" ({self.last_error})" if self.last_error else ""
            return f"node unreachable for {now - self._down_since:.0f}s{cause}"[:300]
        return None

    def last_contact_seconds(self) -> float | None:
        """Seconds since the node last answered one of the walk's requests."""
        if self._last_contact is None:
            return None
        return round(time.monotonic() - self._last_contact, 1)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Count the time inside as waiting for the node; a failure marks it down since then."""
        self._request_ids += 1
        key = self._request_ids
        started = self._in_flight[key] = time.monotonic()
        try:
            yield
        except NodeUnavailable:
            if self._down_since is None:
                self._down_since = started
            raise
        finally:
            del self._in_flight[key]

    def reached(self) -> None:
        """The node answered (if only with a refusal): it is there."""
        self._last_contact = time.monotonic()
        self._down_since = None

    def failed(self, exc: BaseException) -> None:
        """The walk failed: the node counts as down since its oldest unanswered request."""
        now = time.monotonic()
        oldest = min(self._in_flight.values(), default=now)
        if self._down_since is None:
            self._down_since = min(now, oldest)
        self.last_error = str(exc)[:200] or type(exc).__name__

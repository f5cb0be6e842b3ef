"""Hedge latency: how long a fill waited until the hedge covering it closed.

One histogram feeds both the page's latency panel and ``/metrics``, so the
bucket bounds live here, beside the only code that counts into them.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from typing import Any

import attrs

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
"""Upper bounds (seconds) of the hedge latency histogram (dashboard and /metrics)."""
MAX_LATENCY_SAMPLES = 2000


def seconds_between(start: str, end: str) -> float:
    """Seconds from one ISO timestamp to another (negative under clock skew)."""
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@attrs.define
class LatencyHistogram:
    """Cumulative bucket counts (Prometheus semantics) plus recent samples for the page."""

    counts: list[int] = attrs.field(factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0
    recent: list[float] = attrs.field(factory=list)

    def observe(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1
        self.recent.append(round(seconds, 3))
        if len(self.recent) > MAX_LATENCY_SAMPLES:
            del self.recent[: len(self.recent) - MAX_LATENCY_SAMPLES]

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": [*LATENCY_BUCKETS, None],
            "counts": list(self.counts),
            "count": self.count,
            "sum": round(self.total, 3),
            "recent": list(self.recent[-500:]),
        }

"""The circuit breaker as the page shows it: paused or active, why, when, by whom.

The engine holds the breaker itself (``EngineControl.pause``/``resume``); what
the dashboard adds is who flipped it and when, from ``circuit_breaker_log``,
so that the page can say so and a restart can show the last change. The
façade writes a change (``DashboardState.record_breaker``); this shapes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ..store.read_models import BreakerChange


@attrs.define
class Breaker:
    """The last change the dashboard knows of."""

    paused: bool = False
    reason: str | None = None
    changed_at: str | None = None
    actor: str | None = None


def restored_breaker(
    current: Breaker, last: BreakerChange | None, engine_paused: str | None
) -> Breaker:
    """The breaker at start-up: the log's last change, unless the engine is paused while
    the log says active (a pause the engine made itself has no log row: the actor is the
    engine)."""
    breaker = current
    if last is not None:
        breaker = Breaker(last.action == "pause", last.reason, last.at, last.actor)
    if engine_paused is not None and not breaker.paused:
        breaker = Breaker(True, engine_paused, None, "engine")
    return breaker


def breaker_status(breaker: Breaker, engine_paused: str | None) -> dict[str, Any]:
    """``status.breaker``: the engine says whether it is paused, the log says who did it."""
    return {
        "status": "paused" if engine_paused is not None else "active",
        "reason": engine_paused if engine_paused is not None else breaker.reason,
        "changed_at": breaker.changed_at,
        "actor": breaker.actor,
    }


def history_json(changes: Sequence[BreakerChange]) -> list[dict[str, Any]]:
    """The breaker's history as the page lists it."""
    return [
        {
            "at": c.at,
            "action": c.action,
            "reason": c.reason,
            "actor": c.actor,
            "remote": c.remote,
        }
        for c in changes
    ]

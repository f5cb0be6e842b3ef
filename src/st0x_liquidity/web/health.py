"""``/health``: is this process ready, and if not, which check fails and since when.

Pure: the façade asks the store (``ping``), feeds each problem through its
latch (``web/conditions.py``: raise at once, clear slowly) and hands the
latched problems here; these functions decide what a fault is and shape the
answer of ``docs/dashboard.md`` ("GET /health").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .status_view import iso

if TYPE_CHECKING:
    from ..engine.state import EngineStatus
    from ..ha.role import Role
    from .conditions import Latch

LATCHED_CHECKS = ("store", "source", "broker")
"""The checks whose failures are latched, so ``failing_since`` can say when they began."""


def detect_source_fault(status: EngineStatus, source: object, stall_after: float) -> str | None:
    """What is wrong with the fill source right now (no hysteresis), or None.

    The engine saw it fail; the source itself says it cannot reach its node
    (``problem``, e.g. the raindex source: "node unreachable: …"); or a running
    source delivered nothing for ``stall_after`` seconds.
    """
    if status.source_state.startswith("failed"):
        return status.source_state
    if status.source_state != "running":
        return None
    problem = getattr(source, "problem", None)
    if isinstance(problem, str) and problem:
        return problem
    last = status.last_item_at or status.started_at
    silent = (datetime.now(UTC) - last).total_seconds()
    if silent > stall_after:
        return f"no input from the fill source for {silent:.0f}s"
    return None


def store_check(problem: str | None) -> dict[str, Any]:
    check: dict[str, Any] = {"ok": problem is None}
    if problem is not None:
        check["detail"] = problem
    return check


def source_check(fault: str | None, source_state: str, caught_up: object) -> dict[str, Any]:
    """Ready when not faulty, running (or at the end of a finite input) and caught up."""
    if fault is not None:
        return {"ok": False, "detail": fault}
    if source_state not in ("running", "ended"):
        return {"ok": False, "detail": source_state}
    if caught_up is False:
        return {"ok": False, "detail": "catching up"}
    return {"ok": True, "detail": source_state}


def broker_check(fault: str | None, market_checked_at: datetime | None) -> dict[str, Any]:
    """Ready once the broker answered (a market check) and while it has no fault."""
    return {
        "ok": fault is None and market_checked_at is not None,
        "detail": fault or ("reachable" if market_checked_at else "not reached yet"),
    }


def engine_check(stopping: bool) -> dict[str, Any]:
    return {"ok": not stopping, "detail": "stopping" if stopping else "running"}


def failing_since(
    checks: dict[str, dict[str, Any]], latches: dict[str, Latch]
) -> dict[str, str | None]:
    """When each failing latched check first failed."""
    return {
        name: iso(latches[name].since)
        for name in LATCHED_CHECKS
        if not checks[name]["ok"] and latches[name].since is not None
    }


def standby_checks(store_problem: str | None, role: Role) -> dict[str, dict[str, Any]]:
    """A standby runs no source or broker: its checks are the store and the lease."""
    return {
        "store": {
            "ok": store_problem is None,
            **({"detail": store_problem} if store_problem else {}),
        },
        "lease": {"ok": True, "detail": role.detail},
    }


def health_json(
    role: Role,
    checks: dict[str, dict[str, Any]],
    since: dict[str, str | None],
    paused: str | None,
) -> dict[str, Any]:
    """The answer of ``/health``: ready when every check is ok."""
    ready = all(c["ok"] for c in checks.values())
    return {
        "status": "ready" if ready else "not_ready",
        "role": role.name,
        "epoch": role.epoch,
        "checks": checks,
        "failing_since": since,
        "paused": paused,
        "time": datetime.now(UTC).isoformat(),
    }

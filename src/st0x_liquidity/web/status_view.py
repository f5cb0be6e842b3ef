"""The ``status`` block of the page: broker, fill source, engine and risk, as JSON.

Pure shaping of the engine's status (``EngineStatus``) and of what the fill
source publishes about itself; the façade adds the latched problems (a problem
is reported until it has been good for a while, ``web/conditions.py``) and
the pieces other modules shape (exposure, breaker, extended hours).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.state import EngineStatus


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def last_block(cursor: Any) -> int | None:
    """The block a block-based source's cursor has reached, if it has one."""
    if isinstance(cursor, Mapping):
        for key in ("block", "block_number", "next_block"):
            value = cursor.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def broker_json(s: EngineStatus, broker_type: str, token: dict[str, Any] | None) -> dict[str, Any]:
    """``status.broker``; ``auth`` is one word: ok, expiring or required."""
    auth = "ok"
    if s.auth_required or (token is not None and token["state"] == "required"):
        auth = "required"
    elif token is not None and token["state"] == "expiring":
        auth = "expiring"
    return {
        "type": broker_type,
        "market_open": s.market_open,
        "market_checked_at": iso(s.market_checked_at),
        "error": s.broker_error,
        "auth": auth,
        "auth_detail": s.auth_required or (token["problem"] if token else None),
        "token": token,
    }


def source_condition(
    s: EngineStatus, source: object, problem: str | None, since: datetime | None
) -> dict[str, Any]:
    """The source's condition in one word (the page's chip) and what explains it.

    ``problem`` is the latched one and ``since`` when it began; ``source`` may
    publish ``caught_up``, ``head_block`` and ``last_contact_seconds``.
    """
    caught_up = getattr(source, "caught_up", None)
    if problem is None:
        condition = s.source_state
        if condition == "running" and caught_up is False:
            condition = "catching up"
    elif problem.startswith("node unreachable"):
        condition = "node unreachable"
    elif problem.startswith("failed"):
        condition = "failed"
    else:
        condition = "stalled"
    head = getattr(source, "head_block", None)
    contact = getattr(source, "last_contact_seconds", None)
    lag = None
    if s.last_fill_at is not None:
        lag = round((datetime.now(UTC) - s.last_fill_at).total_seconds(), 1)
    return {
        "condition": condition,
        "problem": problem,
        "since": iso(since),
        "head_block": head if isinstance(head, int) else None,
        "last_contact_seconds": contact if isinstance(contact, int | float) else None,
        "caught_up": caught_up if isinstance(caught_up, bool) else None,
        "lag_seconds": lag,
    }


def source_json(
    s: EngineStatus,
    source_type: str,
    name: Any,
    stalled: str | None,
    view: dict[str, Any],
) -> dict[str, Any]:
    """``status.source``: where the source is and :func:`source_condition`'s condition."""
    return {
        "type": source_type,
        "name": name,
        "state": s.source_state,
        "cursor": s.source_cursor,
        "last_block": last_block(s.source_cursor),
        "last_fill_at": iso(s.last_fill_at),
        "last_item_at": iso(s.last_item_at),
        "stalled": stalled,
        **view,
    }


def engine_json(s: EngineStatus, stopping: bool) -> dict[str, Any]:
    """``status.engine``: the engine's counters since it started."""
    return {
        "started_at": iso(s.started_at),
        "fills_ingested": s.fills_ingested,
        "duplicates_dropped": s.duplicates_dropped,
        "inputs_skipped": s.inputs_skipped,
        "hedges_placed": s.hedges_placed,
        "hedges_filled": s.hedges_filled,
        "hedges_failed": s.hedges_failed,
        "stopping": stopping,
    }


def risk_status(s: EngineStatus) -> dict[str, Any]:
    """Trading states, blocked hedges and the last reconciliation."""
    return {
        "states": s.trading_state,
        "blocked": [s.blocked[k] for k in sorted(s.blocked)],
        "reconciliation": s.reconciliation,
    }

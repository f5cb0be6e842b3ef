"""The broker's token status as the dashboard shows it: ok, expiring or required.

A broker plugin that logs in with a refresh token (st0x-schwab) publishes its
token's state in ``app.extras``; the core knows no broker, so it reads that
mapping by key and turns it into one word the page, the alerts and ``/metrics``
agree on, with a day's warning before the token ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

AUTH_EXTRAS = ("schwab_auth",)
"""``app.extras`` keys where broker plugins publish their token status (st0x-schwab)."""
AUTH_WARN_SECONDS = 86400.0
"""Warn this long before a broker refresh token ends (a day: re-authorize in time)."""


def token_status(extras: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any] | None:
    """The broker's token status, when its plugin publishes one (else None).

    ``state`` is ``ok``, ``expiring`` (the refresh token ends within a day)
    or ``required`` (expired, revoked or never authorized: run the broker's
    auth command); ``expires_in_seconds`` counts to the refresh token's end,
    rounded to the minute so status messages change only when it does.
    """
    for key in AUTH_EXTRAS:
        raw = extras.get(key)
        if isinstance(raw, Mapping):
            break
    else:
        return None
    expires_at = raw.get("refresh_expires_at")
    seconds: float | None = None
    if isinstance(expires_at, str):
        try:
            end = datetime.fromisoformat(expires_at)
        except ValueError:
            end = None
        if end is not None:
            if end.tzinfo is None:
                end = end.replace(tzinfo=UTC)
            seconds = (end - (datetime.now(UTC) if now is None else now)).total_seconds()
    problem = raw.get("problem")
    authorized = bool(raw.get("authorized"))
    if not authorized or problem or (seconds is not None and seconds <= 0):
        state = "required"
    elif raw.get("expires_soon") or (seconds is not None and seconds < AUTH_WARN_SECONDS):
        state = "expiring"
    else:
        state = "ok"
    return {
        "provider": key,
        "state": state,
        "authorized": authorized,
        "authorized_at": raw.get("authorized_at"),
        "refresh_expires_at": expires_at,
        "expires_in_seconds": None if seconds is None else max(0, round(seconds / 60) * 60),
        "problem": None if problem is None else str(problem),
    }


def auth_problem(engine_problem: str | None, token: dict[str, Any] | None) -> str | None:
    """Why the broker needs re-authorisation, if it does: the engine's word first (an
    order refused for credentials), else the token's own status."""
    if engine_problem is None and token is not None and token["state"] == "required":
        return str(token["problem"] or "the refresh token has expired")
    return engine_problem

"""The dashboard's alerts: what the engine's state says an operator must look at.

Pure: the façade (``web/state.py``) gathers the latched problems (source,
broker, re-authorisation), the stuck hedges and whether the unhedged exposure
grew, and this turns them with the engine's status into the alert list of
``docs/dashboard.md`` ("Alerts"), in a fixed order so the page does not
reshuffle. ``/metrics`` counts them by kind (``st0x_alerts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.state import EngineStatus

ALERT_KINDS = (
    "source_stalled",
    "stuck_order",
    "auth_required",
    "auth_expiring",
    "broker_error",
    "paused",
    "hedge_blocked",
    "trading_state",
    "reconciliation_mismatch",
    "reconciliation_failed",
    "calendar_unavailable",
)
"""Every kind of dashboard alert (``st0x_alerts`` has a sample, 0 or more, for each)."""


def stuck_alert(client_order_id: str, message: str) -> dict[str, Any]:
    """An open hedge without progress for longer than its threshold."""
    return {
        "kind": "stuck_order",
        "severity": "critical",
        "message": message,
        "client_order_id": client_order_id,
    }


def alert_list(
    status: EngineStatus,
    *,
    stalled: str | None,
    stuck: Sequence[dict[str, Any]],
    auth_required: str | None,
    token: dict[str, Any] | None,
    broker_error: str | None,
    broker_error_grew: bool,
    paused_grew: bool,
) -> list[dict[str, Any]]:
    """Active alerts, from the latched problems and the engine's status.

    ``broker_error_grew`` and ``paused_grew``: some symbol's unhedged exposure grew
    since the broker error (or the pause) began, which makes it critical.
    """
    alerts: list[dict[str, Any]] = []
    if stalled:
        alerts.append({"kind": "source_stalled", "severity": "critical", "message": stalled})
    alerts += stuck
    if auth_required is not None:
        alerts.append(
            {
                "kind": "auth_required",
                "severity": "critical",
                "message": f"broker needs re-authorisation: {auth_required}",
            }
        )
    if token is not None and token["state"] == "expiring":
        hours = (token["expires_in_seconds"] or 0) / 3600
        alerts.append(
            {
                "kind": "auth_expiring",
                "severity": "warning",
                "message": f"broker refresh token expires in {hours:.1f} h "
                f"(at {token['refresh_expires_at']}): re-authorize before then",
            }
        )
    if broker_error_grew:
        alerts.append(
            {
                "kind": "broker_error",
                "severity": "critical",
                "message": f"{broker_error} (unhedged exposure growing meanwhile)",
            }
        )
    elif broker_error is not None:
        alerts.append({"kind": "broker_error", "severity": "warning", "message": broker_error})
    alerts += _risk_alerts(status)
    if status.calendar_error is not None:
        alerts.append(
            {
                "kind": "calendar_unavailable",
                "severity": "warning",
                "message": "broker calendar unavailable: extended-hours hedges wait "
                f"({status.calendar_error})",
            }
        )
    if paused_grew:
        alerts.append(
            {
                "kind": "paused",
                "severity": "critical",
                "message": f"hedging paused: {status.paused} (unhedged exposure growing meanwhile)",
            }
        )
    elif status.paused:
        alerts.append(
            {
                "kind": "paused",
                "severity": "warning",
                "message": f"hedging paused: {status.paused}",
            }
        )
    return alerts


def _risk_alerts(status: EngineStatus) -> list[dict[str, Any]]:
    """Blocked hedges, symbols not active, and what the last reconciliation found."""
    alerts: list[dict[str, Any]] = []
    for symbol, entry in sorted(status.blocked.items()):
        alerts.append(
            {
                "kind": "hedge_blocked",
                "severity": "critical",
                "message": f"{symbol} hedge {entry['side']} {entry['quantity']} blocked: "
                f"{entry['reason']}",
                "symbol": symbol,
                "limit": entry["limit"],
            }
        )
    for symbol, entry in sorted(status.trading_state.items()):
        if entry["state"] != "active":
            who = "every symbol" if symbol == "*" else symbol
            alerts.append(
                {
                    "kind": "trading_state",
                    "severity": "warning",
                    "message": f"{who} is {entry['state']}: {entry['reason']}",
                    "symbol": symbol,
                }
            )
    recon = status.reconciliation or {}
    for item in recon.get("symbols") or ():
        if item["mismatch"]:
            alerts.append(
                {
                    "kind": "reconciliation_mismatch",
                    "severity": "critical",
                    "message": f"{item['symbol']}: broker holds {item['broker']}, "
                    f"the books say {item['books']} (difference {item['difference']})",
                    "symbol": item["symbol"],
                }
            )
    if recon.get("status") == "error":
        alerts.append(
            {
                "kind": "reconciliation_failed",
                "severity": "warning",
                "message": f"reconciliation failed: {recon.get('detail')}",
            }
        )
    return alerts


def count_by_kind(alerts: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many alerts of each kind (every kind present, 0 when none)."""
    counts = dict.fromkeys(ALERT_KINDS, 0)
    for alert in alerts:
        counts[alert["kind"]] = counts.get(alert["kind"], 0) + 1
    return counts

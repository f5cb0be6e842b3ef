"""Extended hours on the dashboard and in ``/metrics``: sessions, live limits, hedgeable hours.

Its own module so that web/state.py only wires it in: the engine reports the
sessions and the live limit orders (``EngineControl.extended_hours``), this
shapes them for the page and the scrape. A resting limit is not a stuck
order until it outlives its reprice timeout (``stuck_threshold``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from ..services import AppServices

SESSIONS = ("regular", "pre", "post", "overnight", "closed")

FAMILIES = (
    "st0x_symbol_session",
    "st0x_symbol_hedgeable_hours_per_week",
    "st0x_symbol_next_hedge_seconds",
    "st0x_limit_order_age_seconds",
)


def extended_json(app: AppServices) -> dict[str, Any]:
    """The ``status.extended_hours`` block of the dashboard."""
    return app.engine.extended_hours()


def stuck_threshold(app: AppServices, stuck_after: float, client_order_id: str) -> float:
    """Seconds an open hedge may go unchanged: longer for a resting limit (it waits for
    its reprice timeout by design)."""
    view = app.engine.extended_hours()
    if any(o["client_order_id"] == client_order_id for o in view.get("limits", ())):
        return stuck_after + app.config.extended_hours.reprice_timeout
    return stuck_after


def metrics(app: AppServices) -> Iterator[GaugeMetricFamily]:
    view = app.engine.extended_hours()
    now = view.get("now")
    session = GaugeMetricFamily(
        "st0x_symbol_session",
        "1 for the session each symbol opted in to extended hours is in now",
        labels=["symbol", "session"],
    )
    hours = GaugeMetricFamily(
        "st0x_symbol_hedgeable_hours_per_week",
        "Hours a week the symbol can be hedged in, as configured and allowed",
        labels=["symbol"],
    )
    wait = GaugeMetricFamily(
        "st0x_symbol_next_hedge_seconds",
        "Seconds until the symbol can be hedged again (0 while a session is open)",
        labels=["symbol"],
    )
    for symbol, entry in sorted(view.get("symbols", {}).items()):
        for name in SESSIONS:
            session.add_metric([symbol, name], 1.0 if entry["session"] == name else 0.0)
        hours.add_metric([symbol], float(entry["hedgeable_hours_per_week"]))
        if entry["next_hedge_at"] is not None and now is not None:
            left = datetime.fromisoformat(entry["next_hedge_at"]) - datetime.fromisoformat(now)
            wait.add_metric([symbol], max(0.0, left.total_seconds()))
    ages = GaugeMetricFamily(
        "st0x_limit_order_age_seconds",
        "Age of each live extended-hours limit order",
        labels=["symbol", "client_order_id", "session", "reference_source"],
    )
    for order in view.get("limits", ()):
        ages.add_metric(
            [
                order["symbol"],
                order["client_order_id"],
                order["session"],
                order["reference_source"],
            ],
            float(order["age_seconds"]),
        )
    yield session
    yield hours
    yield wait
    yield ages

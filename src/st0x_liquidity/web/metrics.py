"""Prometheus metrics (text exposition through prometheus-client).

A custom collector builds every family at scrape time from the engine's status
and the dashboard's view of the database, so the numbers are the same the page
shows and counters are all-time totals from the event log (they survive
restarts) rather than per-process tallies. Names and labels: ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import __version__
from . import extended_view
from .latency import LATENCY_BUCKETS
from .state import DashboardState
from .status_view import last_block

METRIC_NAMES = (
    "st0x_build",
    "st0x_fills_ingested_total",
    "st0x_fills_skipped_total",
    "st0x_duplicates_dropped_total",
    "st0x_hedges_placed_total",
    "st0x_hedges_filled_total",
    "st0x_hedges_failed_total",
    "st0x_hedges_open",
    "st0x_hedge_latency_seconds",
    "st0x_net_position_shares",
    "st0x_unhedged_exposure_shares",
    "st0x_unhedged_exposure_usd",
    "st0x_realized_pnl_usd",
    "st0x_source_last_block",
    "st0x_source_last_item_age_seconds",
    "st0x_source_lag_seconds",
    "st0x_source_up",
    "st0x_source_ws_reconnects_total",
    "st0x_source_stats_total",
    "st0x_broker_up",
    "st0x_broker_auth_required",
    "st0x_broker_auth_expires_seconds",
    "st0x_broker_request_errors_total",
    "st0x_broker_rate_limited_total",
    "st0x_store_up",
    "st0x_market_open",
    "st0x_hedging_paused",
    "st0x_ready",
    "st0x_leader",
    "st0x_alerts",
    "st0x_event_log_position",
    "st0x_hedge_blocked",
    "st0x_reconciliation_mismatch",
    *extended_view.FAMILIES,
)
"""Every family this collector exposes (the Grafana test checks against the scrape)."""


def _f(value: str | Decimal | None) -> float:
    """Decimal to float for exposition only (Prometheus samples are floats)."""
    return 0.0 if value is None else float(Decimal(value))


def _stats(obj: Any) -> Mapping[str, float]:
    stats = getattr(obj, "stats", None)
    if not isinstance(stats, Mapping):
        return {}
    return {
        str(k): float(v)
        for k, v in stats.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _first(stats: Mapping[str, float], *keys: str) -> float:
    for key in keys:
        if key in stats:
            return stats[key]
    return 0.0


class St0xCollector(Collector):
    def __init__(self, state: DashboardState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:  # noqa: PLR0915 - one family after another
        state = self.state
        app = state.app
        status = app.engine.status
        broker = app.config.broker_type
        source = app.config.source_type
        counts = state.counts
        hedge_states: dict[str, int] = counts.get("hedge_states", {})

        info = InfoMetricFamily("st0x_build", "Version and configured broker/source")
        info.add_metric([], {"version": __version__, "broker": broker, "source": source})
        yield info

        fills = CounterMetricFamily(
            "st0x_fills_ingested", "Onchain fills recorded (all time)", labels=["source"]
        )
        fills.add_metric([source], counts.get("fills", 0))
        yield fills
        skipped = CounterMetricFamily(
            "st0x_fills_skipped",
            "Source inputs recorded as skipped, by reason category (all time)",
            labels=["source", "reason"],
        )
        for reason, n in sorted(counts.get("skipped", {}).items()):
            skipped.add_metric([source, reason], n)
        yield skipped
        dups = CounterMetricFamily(
            "st0x_duplicates_dropped", "Fills delivered again and dropped (this process)"
        )
        dups.add_metric([], status.duplicates_dropped)
        yield dups

        placed = CounterMetricFamily(
            "st0x_hedges_placed", "Hedge orders intended (all time)", labels=["broker"]
        )
        placed.add_metric([broker], sum(hedge_states.values()))
        yield placed
        filled = CounterMetricFamily(
            "st0x_hedges_filled", "Hedge orders filled completely (all time)", labels=["broker"]
        )
        filled.add_metric([broker], hedge_states.get("filled", 0))
        yield filled
        failed = CounterMetricFamily(
            "st0x_hedges_failed",
            "Hedge orders that failed or were cancelled (all time)",
            labels=["broker", "state"],
        )
        for st in ("failed", "cancelled"):
            failed.add_metric([broker, st], hedge_states.get(st, 0))
        yield failed
        open_ = GaugeMetricFamily("st0x_hedges_open", "Hedge orders in flight", labels=["broker"])
        open_.add_metric(
            [broker],
            sum(hedge_states.get(s, 0) for s in ("pending", "submitted", "partially_filled")),
        )
        yield open_

        hist = state.latency
        buckets = []
        cumulative = 0
        for bound, count in zip([*LATENCY_BUCKETS, float("inf")], hist.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        latency = HistogramMetricFamily(
            "st0x_hedge_latency_seconds",
            "From a fill being recorded to the hedge that covered it closing",
            labels=["broker"],
        )
        latency.add_metric([broker], buckets, sum_value=hist.total)
        yield latency

        net = GaugeMetricFamily("st0x_net_position_shares", "Net position", labels=["symbol"])
        unhedged = GaugeMetricFamily(
            "st0x_unhedged_exposure_shares",
            "Exposure not covered by a hedge yet (signed shares)",
            labels=["symbol"],
        )
        unhedged_usd = GaugeMetricFamily(
            "st0x_unhedged_exposure_usd",
            "Unhedged exposure at the last onchain price",
            labels=["symbol"],
        )
        pnl = GaugeMetricFamily(
            "st0x_realized_pnl_usd", "Realized P&L by FIFO matching", labels=["symbol"]
        )
        for p in state.positions_cache:
            net.add_metric([p["symbol"]], _f(p["net"]))
            unhedged.add_metric([p["symbol"]], _f(p["unhedged"]))
            if p["unhedged_usd"] is not None:  # no price yet: no sample, not a false 0
                unhedged_usd.add_metric([p["symbol"]], _f(p["unhedged_usd"]))
        for symbol, book in sorted(state.pnl.symbols.items()):
            pnl.add_metric([symbol], float(book.cumulative))
        yield net
        yield unhedged
        yield unhedged_usd
        yield pnl

        now = datetime.now(UTC)
        block = last_block(status.source_cursor)
        last = GaugeMetricFamily(
            "st0x_source_last_block", "Block the fill source has read up to", labels=["source"]
        )
        if block is not None:
            last.add_metric([source], block)
        yield last
        age = GaugeMetricFamily(
            "st0x_source_last_item_age_seconds",
            "Seconds since the fill source last delivered anything",
            labels=["source"],
        )
        seen = status.last_item_at or status.started_at
        age.add_metric([source], (now - seen).total_seconds())
        yield age
        lag = GaugeMetricFamily(
            "st0x_source_lag_seconds",
            "Seconds between now and the block time of the newest fill",
            labels=["source"],
        )
        if status.last_fill_at is not None:
            lag.add_metric([source], (now - status.last_fill_at).total_seconds())
        yield lag
        up = GaugeMetricFamily(
            "st0x_source_up", "1 while the fill source is healthy", labels=["source"]
        )
        up.add_metric(
            [source],
            1.0
            if status.source_state in ("running", "ended") and state.source_stalled() is None
            else 0.0,
        )
        yield up
        source_stats = _stats(app.source)
        reconnects = CounterMetricFamily(
            "st0x_source_ws_reconnects",
            "WebSocket reconnects of the fill source (this process)",
            labels=["source"],
        )
        reconnects.add_metric([source], _first(source_stats, "reconnects", "ws_reconnects"))
        yield reconnects
        extra = CounterMetricFamily(
            "st0x_source_stats",
            "Counters the fill source reports about itself (this process)",
            labels=["source", "kind"],
        )
        for kind, value in sorted(source_stats.items()):
            extra.add_metric([source, kind], value)
        yield extra

        broker_stats = _stats(app.executor)
        broker_up = GaugeMetricFamily(
            "st0x_broker_up", "1 when the last broker call succeeded", labels=["broker"]
        )
        broker_up.add_metric(
            [broker],
            1.0 if status.market_checked_at is not None and state.broker_fault() is None else 0.0,
        )
        yield broker_up
        auth = GaugeMetricFamily(
            "st0x_broker_auth_required",
            "1 while the broker needs re-authorisation",
            labels=["broker"],
        )
        token = state.broker_auth()
        required = status.auth_required or (token is not None and token["state"] == "required")
        auth.add_metric([broker], 1.0 if required else 0.0)
        yield auth
        expires = GaugeMetricFamily(
            "st0x_broker_auth_expires_seconds",
            "Seconds until the broker refresh token ends (0 once expired; absent if none)",
            labels=["broker"],
        )
        if token is not None and token["expires_in_seconds"] is not None:
            expires.add_metric([broker], float(token["expires_in_seconds"]))
        yield expires
        errors = CounterMetricFamily(
            "st0x_broker_request_errors",
            "Failed broker HTTP requests (this process; 0 if the executor does not count)",
            labels=["broker"],
        )
        errors.add_metric([broker], _first(broker_stats, "request_errors", "errors"))
        yield errors
        limited = CounterMetricFamily(
            "st0x_broker_rate_limited",
            "Broker answers 429 Too Many Requests (this process)",
            labels=["broker"],
        )
        limited.add_metric([broker], _first(broker_stats, "rate_limited", "http_429", "429"))
        yield limited

        market = GaugeMetricFamily("st0x_market_open", "1 while the market is open")
        market.add_metric([], 1.0 if status.market_open else 0.0)
        yield market
        paused = GaugeMetricFamily("st0x_hedging_paused", "1 while the circuit breaker is open")
        paused.add_metric([], 1.0 if status.paused is not None else 0.0)
        yield paused
        blocked = GaugeMetricFamily(
            "st0x_hedge_blocked",
            "1 for each symbol whose hedge a risk limit or trading state blocks",
            labels=["symbol", "limit"],
        )
        for symbol, entry in sorted(status.blocked.items()):
            blocked.add_metric([symbol, str(entry.get("limit"))], 1.0)
        yield blocked
        yield from extended_view.metrics(app)
        trading = GaugeMetricFamily(
            "st0x_trading_state",
            "1 for each symbol's current trading state (symbol '*': the default)",
            labels=["symbol", "state"],
        )
        for symbol, entry in sorted(status.trading_state.items()):
            trading.add_metric([symbol, str(entry.get("state"))], 1.0)
        yield trading
        mismatch = GaugeMetricFamily(
            "st0x_reconciliation_mismatch",
            "1 when the broker's position differs from the books' beyond the tolerance "
            "(only symbols the last reconciliation compared)",
            labels=["symbol"],
        )
        for item in (status.reconciliation or {}).get("symbols") or ():
            mismatch.add_metric([str(item["symbol"])], 1.0 if item["mismatch"] else 0.0)
        yield mismatch
        store_up = GaugeMetricFamily("st0x_store_up", "1 while the database answers")
        store_up.add_metric([], 1.0 if state.store_up else 0.0)
        yield store_up
        ready = GaugeMetricFamily("st0x_ready", "1 when /health reports ready")
        ready.add_metric([], 1.0 if state.ready_cache else 0.0)
        yield ready
        role = state.role()
        leader = GaugeMetricFamily(
            "st0x_leader", "1 on the leader (holds the lease, hedges), 0 on a standby"
        )
        leader.add_metric([], 1.0 if role.leader else 0.0)
        yield leader
        # Every kind, 0 when not active, once alerts have been evaluated (each scrape
        # evaluates them first); none at all only if that evaluation failed.
        alerts = GaugeMetricFamily("st0x_alerts", "Active alerts by kind", labels=["kind"])
        for kind, n in sorted(state.alert_counts.items()):
            alerts.add_metric([kind], n)
        yield alerts
        position = GaugeMetricFamily(
            "st0x_event_log_position", "Last event log position the dashboard has read"
        )
        position.add_metric([], state.position)
        yield position


def build_registry(state: DashboardState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(St0xCollector(state))
    return registry

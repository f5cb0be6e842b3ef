"""What the dashboard shows, read through the store's read models.

The dashboard never shares the engine's connection: its plugin gives it read
models on a read connection of its own (WAL lets it read while the engine
writes), and it follows the event log by its global position. The engine's
commit listener only wakes it up, so a message can never be missed or sent
twice: whatever was committed after the last position read is read next, in
order.

:class:`DashboardState` is the façade the server, ``/metrics`` and the plugin
use: it does the reads and keeps what it read; the shaping and the rules live
in modules of their own, pure where they can be: ``pnl_curve`` (the P&L
fold), ``latency``, ``changes`` (a log batch's messages), ``rows`` (the
page's rows), ``exposure``, ``breaker``, ``status_view``, and ``monitor``
(latches, alerts and ``/health``, with ``alerts``, ``health`` and
``broker_auth`` as its rules).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from ..domain.events import CIRCUIT_BREAKER, CircuitBreakerChanged, NewEvent
from ..domain.pnl import PnlBook, PnlTotals
from ..ha.role import Role
from ..reporting.limit_slippage import read_slippage, slippage_to_json
from ..reporting.pnl import read_trades, trade_from_event
from ..store.breaker_log import BreakerLog
from ..store.read_models import BreakerChange, DashboardReads, LoggedEvent
from .alerts import ALERT_KINDS
from .breaker import Breaker, breaker_status, history_json, restored_breaker
from .changes import Changes, batch_messages
from .conditions import Latch
from .exposure import exposure_json, first_open_fills, unhedged_total
from .extended_view import extended_json, stuck_threshold
from .latency import LATENCY_BUCKETS, LatencyHistogram, seconds_between
from .monitor import Monitor
from .pnl_curve import PnlCurve
from .rows import coverage_by_hedge, fill_row, hedge_row, merge_positions, position_row
from .status_view import (
    broker_json,
    engine_json,
    last_block,
    risk_status,
    source_json,
)

if TYPE_CHECKING:
    from ..services import AppServices

__all__ = [
    "ALERT_KINDS",
    "LATENCY_BUCKETS",
    "DashboardState",
    "LatencyHistogram",
    "last_block",
    "reason_category",
]
"""The façade and the names other modules and the tests import from here."""

COUNTS_EVERY = 1.0
"""Seconds between refreshes of the all-time counts /metrics reports."""
_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|0x[0-9a-fA-F]+|\b\d+(?:\.\d+)?\b")


def reason_category(reason: str) -> str:
    """A skip reason without its variable parts, for a bounded metric label."""
    return _VARIABLE.sub("…", reason).strip()[:80] or "unknown"


@attrs.define
class DashboardState:
    """Reads views and events for the page, the metrics and /health."""

    app: AppServices
    reads: DashboardReads
    breaker_log: BreakerLog
    stuck_after: float = 120.0
    stall_after: float = 300.0
    recent_fills: int = 200
    clear_after: float = 30.0
    """Seconds a failed check or an alert must stay good before it clears (hysteresis)."""
    position: int = 0
    curve: PnlCurve = attrs.field(factory=PnlCurve)
    limit_slippage: dict[str, Any] = attrs.field(factory=dict)
    """Per symbol, what extended-hours limits paid against the onchain fills
    (``report --summary``'s ``limit_slippage``); read again when a limit closes."""
    _slippage_stale: bool = True
    latency: LatencyHistogram = attrs.field(factory=LatencyHistogram)
    breaker: Breaker = attrs.field(factory=Breaker)
    counts: dict[str, Any] = attrs.field(factory=dict)
    positions_cache: list[dict[str, Any]] = attrs.field(factory=list)
    started: float = attrs.field(factory=time.monotonic)
    _counted_at: float = -1e9
    _counts_stale: bool = False
    exposure: dict[str, Any] = attrs.field(factory=dict)
    monitor: Monitor = attrs.field(init=False)
    """The latched problems, the alerts and /health (``web/monitor.py``), made with the
    thresholds above; the façade hands its methods and counters on."""

    def __attrs_post_init__(self) -> None:
        self.monitor = Monitor(
            self.app,
            self.reads,
            lambda: self.positions_cache,
            stuck_after=self.stuck_after,
            stall_after=self.stall_after,
            clear_after=self.clear_after,
        )

    @property
    def pnl(self) -> PnlBook:
        """The FIFO book (``/metrics`` reads its per-symbol realized P&L)."""
        return self.curve.book

    @property
    def pnl_totals(self) -> dict[str, PnlTotals]:
        return self.curve.totals

    @property
    def series(self) -> list[dict[str, Any]]:
        return self.curve.series

    @property
    def latches(self) -> dict[str, Latch]:
        return self.monitor.latches

    @property
    def alert_counts(self) -> dict[str, int]:
        """Alerts by kind at the last look (``st0x_alerts``); ``{}`` when unknown."""
        return self.monitor.alert_counts

    @alert_counts.setter
    def alert_counts(self, counts: dict[str, int]) -> None:
        self.monitor.alert_counts = counts

    @property
    def ready_cache(self) -> bool:
        """Whether the last /health was ready (``st0x_ready``)."""
        return self.monitor.ready_cache

    @property
    def store_up(self) -> bool:
        """The store check of the last /health (``st0x_store_up``)."""
        return self.monitor.store_up

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        await self._load_breaker()
        # Fold the P&L of the history from the trade events only (fast path),
        # then read whatever else was committed since without building messages.
        while True:
            trades, last = await read_trades(self.reads, self.position, 500)
            if last == self.position:
                break
            for trade in trades:
                self.curve.add(trade)
            self.position = last
            await asyncio.sleep(0)  # let the engine run between chunks
        await self.catch_up(build=False, observe=False)
        await self.refresh_counts()
        await self.refresh_slippage()

    async def refresh_slippage(self) -> None:
        self.limit_slippage = slippage_to_json(await read_slippage(self.reads))
        self._slippage_stale = False

    # -- following the log ------------------------------------------------------------

    async def catch_up(self, *, build: bool = True, observe: bool = True) -> list[dict[str, Any]]:
        """Read events committed since the last call; return the messages they make.

        ``build=False`` skips the messages (nobody is watching): the P&L and the
        latencies are still kept current for /metrics. ``observe=False``
        (start-up) skips latencies too; their history comes from
        :meth:`load_latency_history`.
        """
        messages: list[dict[str, Any]] = []
        while True:
            events = await self.reads.events_after(self.position, 2000)
            if not events:
                break
            self._counts_stale = True
            messages.extend(await self._apply(events, build, observe))
            self.position = events[-1].position
        if self._counts_stale and time.monotonic() - self._counted_at >= COUNTS_EVERY:
            await self.refresh_counts()
        return messages

    async def _apply(
        self, events: Sequence[LoggedEvent], build: bool, observe: bool
    ) -> list[dict[str, Any]]:
        changes = Changes()
        pnl_points: list[dict[str, Any]] = []
        for event in events:
            trade = trade_from_event(
                event.position,
                str(event.aggregate_id),
                event.event_type,
                event.payload,
                event.recorded_at,
            )
            if trade is not None:
                pnl_points.append(self.curve.add(trade))
            if build or (observe and event.event_type == "HedgeClosed"):
                changes.note(event)
        self.curve.trim()
        closed = changes.closed
        if observe:
            for cid in closed:
                for seconds in await self._latencies(cid):
                    self.latency.observe(seconds)
        if not build:
            self._slippage_stale = self._slippage_stale or bool(closed)
            return []
        fills = await self.fills(trade_ids=list(changes.fills))
        hedges = await self.hedges(client_order_ids=list(changes.hedges))
        slippage_only = await self._slippage_changed(hedges, closed) and not pnl_points
        slippage_pnl = self._pnl_update([]) if slippage_only else None
        symbols = list(changes.symbols)
        positions = await self.positions(symbols=symbols) if symbols else []
        return batch_messages(
            events[-1].position,
            fills=fills,
            hedges=hedges,
            slippage_pnl=slippage_pnl,
            positions=positions,
            pnl=self._pnl_update(pnl_points) if pnl_points else None,
            latency=self.latency.to_json() if closed else None,
            skipped=changes.skipped,
        )

    async def _slippage_changed(self, hedges: list[dict[str, Any]], closed: list[str]) -> bool:
        """Read the limit slippage again if a limit hedge just closed."""
        ended = set(closed)
        limit_ended = any(
            h["client_order_id"] in ended and h.get("order_type") == "limit" for h in hedges
        )
        if not limit_ended and not (ended and self._slippage_stale):
            return False
        await self.refresh_slippage()
        return True

    async def _latencies(self, client_order_id: str) -> list[float]:
        return [
            seconds_between(x.fill_recorded_at, x.hedge_closed_at)
            for x in await self.reads.hedge_latencies(client_order_id)
        ]

    async def load_latency_history(self) -> None:
        """Latencies of every hedge that closed before the dashboard started."""
        for x in await self.reads.closed_hedge_latencies():
            self.latency.observe(seconds_between(x.fill_recorded_at, x.hedge_closed_at))

    # -- reads for the page -------------------------------------------------------------

    async def positions(self, symbols: Sequence[str] | None = None) -> list[dict[str, Any]]:
        result = []
        for p in await self.reads.positions(symbols):
            book = self.pnl.symbols.get(p.symbol)
            result.append(position_row(p, book.cumulative if book is not None else Decimal(0)))
        self.positions_cache = merge_positions(self.positions_cache, result, every=symbols is None)
        return result

    async def fills(
        self, *, trade_ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        trades = await self.reads.recent_trades(trade_ids=trade_ids, limit=limit)
        if not trades:
            return []
        links = await self.reads.links([t.key for t in trades])
        cids = sorted({x.counterpart for ls in links.values() for x in ls if x.kind != "netted"})
        hedges = {
            h["client_order_id"]: h
            for h in await self.hedges(client_order_ids=cids, with_fills=False)
        }
        return [fill_row(t, links.get(t.key, []), hedges) for t in trades]

    async def hedges(
        self,
        *,
        client_order_ids: Sequence[str] | None = None,
        limit: int | None = None,
        with_fills: bool = True,
    ) -> list[dict[str, Any]]:
        rows = await self.reads.recent_hedge_orders(client_order_ids=client_order_ids, limit=limit)
        covered: dict[str, list[dict[str, str]]] = {}
        if with_fills and rows:
            covered = coverage_by_hedge(
                await self.reads.hedge_coverage([h.client_order_id for h in rows])
            )
        now = datetime.now(UTC)
        return [hedge_row(h, covered, now, self._stuck_threshold) for h in rows]

    def _stuck_threshold(self, client_order_id: str) -> float:
        return stuck_threshold(self.app, self.stuck_after, client_order_id)

    async def open_and_recent_hedges(self, limit: int = 100) -> list[dict[str, Any]]:
        open_ids = await self.reads.open_hedge_ids()
        recent = await self.hedges(limit=limit)
        have = {h["client_order_id"] for h in recent}
        extra = await self.hedges(client_order_ids=[c for c in open_ids if c not in have])
        return sorted([*recent, *extra], key=lambda h: h["created_at"], reverse=True)

    def _pnl_update(self, points: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "points": points,
            "summary": self.pnl_summary(),
            "limit_slippage": self.limit_slippage,
        }

    def pnl_summary(self) -> dict[str, Any]:
        return self.curve.summary()

    def pnl_series(self, points: int = 1000) -> list[dict[str, Any]]:
        """The cumulative P&L curve, thinned to about ``points`` points (last one exact)."""
        return self.curve.thinned(points)

    # -- counts, breaker, status --------------------------------------------------------

    async def refresh_counts(self) -> None:
        states = await self.reads.hedge_state_counts()
        skipped: dict[str, int] = {}
        for reason, n in (await self.reads.skip_reason_counts()).items():
            category = reason_category(reason)
            skipped[category] = skipped.get(category, 0) + n
        fills = await self.reads.fill_count()
        await self.positions()  # the per-symbol gauges of /metrics
        self.exposure = await self._exposure()
        self._counted_at = time.monotonic()
        self._counts_stale = False
        self.counts = {
            "fills": fills,
            "hedge_states": states,
            "skipped": skipped,
        }

    async def _load_breaker(self) -> None:
        last = await self.reads.last_breaker_change()
        self.breaker = restored_breaker(self.breaker, last, self.app.engine.status.paused)

    async def record_breaker(
        self, action: str, reason: str, actor: str, remote: str | None
    ) -> Breaker:
        """Apply a pause/resume to the engine and append it to the audit trail.

        The change is a ``CircuitBreakerChanged`` event in the event log (the
        audit trail), and a row of ``circuit_breaker_log`` (the breaker's
        history on the page and its state after a restart).
        """
        now = datetime.now(UTC).isoformat()
        change = CircuitBreakerChanged(
            paused=action == "pause", reason=reason, actor=actor, remote=remote
        )
        await self.app.store.append([NewEvent(CIRCUIT_BREAKER, "hedging", change)])
        await self.breaker_log.append(BreakerChange(now, action, reason, actor, remote))
        if action == "pause":
            self.app.engine.pause(reason)
        else:
            self.app.engine.resume()
        self.breaker = Breaker(action == "pause", reason, now, actor)
        return self.breaker

    async def breaker_history(self, limit: int = 20) -> list[dict[str, Any]]:
        return history_json(await self.reads.breaker_history(limit))

    def broker_auth(self) -> dict[str, Any] | None:
        """The broker's token status, when its plugin publishes one (else None)."""
        return self.monitor.broker_auth()

    def inventory(self) -> dict[str, Any] | None:
        """Inventory per asset with its band (``inventory --json``), or None.

        Only when ``[rebalancing]`` is configured: its service publishes itself
        as ``app.extras["rebalancer"]`` and keeps its book current after every
        commit; this reads that book, it does not fold the logs again.
        """
        rebalancer = self.app.extras.get("rebalancer")
        if rebalancer is None:
            return None
        from ..rebalancing.plugin import inventory_json

        return inventory_json(rebalancer.keeper.book, rebalancer.config)

    # -- the watch over the engine (web/monitor.py) -------------------------------------

    def role(self) -> Role:
        """This process's role (``run`` puts it in ``extras``; a lone instance leads)."""
        return self.monitor.role()

    def source_fault(self) -> str | None:
        """What is wrong with the fill source right now (no hysteresis), or None."""
        return self.monitor.source_fault()

    def source_stalled(self) -> str | None:
        """The source's problem as reported: held until it has been good for a while."""
        return self.monitor.source_stalled()

    def broker_fault(self) -> str | None:
        """The broker's problem as reported (re-authorisation or an error), held likewise."""
        return self.monitor.broker_fault()

    def observe(self) -> None:
        """One observation of the engine's and the source's state for the latches."""
        self.monitor.observe()

    def source_view(self) -> dict[str, Any]:
        """The source's condition in one word (the page's chip) and what explains it."""
        return self.monitor.source_view()

    async def alerts(self) -> list[dict[str, Any]]:
        """Active alerts, each held until its condition has been good for a while."""
        return await self.monitor.alerts()

    async def health(self) -> dict[str, Any]:
        """Readiness: store readable, fill source reachable and caught up, broker reachable."""
        return await self.monitor.health()

    async def _exposure(self) -> dict[str, Any]:
        """Total unhedged USD (gross over symbols) and the oldest fill not yet covered."""
        total, unpriced = unhedged_total(self.positions_cache)
        lots = await self.reads.open_lots()
        firsts = first_open_fills(lots)
        trades = await self.reads.recent_trades(trade_ids=firsts) if firsts else []
        return exposure_json(total, unpriced, len(lots), trades)

    def status(self) -> dict[str, Any]:
        s = self.app.engine.status
        config = self.app.config
        return {
            "broker": broker_json(s, config.broker_type, self.broker_auth()),
            "source": source_json(
                s,
                config.source_type,
                getattr(self.app.source, "name", config.source_type),
                self.source_stalled(),
                self.source_view(),
            ),
            "exposure": self.exposure,
            "engine": engine_json(s, self.app.engine.stopping),
            "breaker": self.breaker_json(),
            "risk": self.risk_json(),
            "extended_hours": extended_json(self.app),
            "log_position": self.position,
            "role": self.role().to_json(),
        }

    def risk_json(self) -> dict[str, Any]:
        """Trading states, blocked hedges and the last reconciliation."""
        return risk_status(self.app.engine.status)

    async def record_trading_state(
        self, symbol: str, state: str, reason: str, actor: str, remote: str | None
    ) -> dict[str, Any]:
        """Set a trading state through the engine (a ``trading_state_log`` row and an event)."""
        await self.app.engine.set_trading_state(symbol, state, reason, actor, remote)
        return self.risk_json()

    def breaker_json(self) -> dict[str, Any]:
        return breaker_status(self.breaker, self.app.engine.status.paused)

    async def _slippage(self) -> dict[str, Any]:
        if self._slippage_stale:  # limits closed while nobody watched
            await self.refresh_slippage()
        return self.limit_slippage

    async def initial(self) -> dict[str, Any]:
        """The full state sent first on every WebSocket connection."""
        return {
            "positions": await self.positions(),
            "fills": await self.fills(limit=self.recent_fills),
            "hedges": await self.open_and_recent_hedges(),
            "pnl": {
                "summary": self.pnl_summary(),
                "series": self.pnl_series(),
                "limit_slippage": await self._slippage(),
            },
            "latency": self.latency.to_json(),
            "status": self.status(),
            "alerts": await self.alerts(),
            "health": await self.health(),
            "breaker_history": await self.breaker_history(),
            "inventory": self.inventory(),
        }


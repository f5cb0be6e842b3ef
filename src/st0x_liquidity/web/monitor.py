"""The dashboard's watch over the engine: latched problems, the alerts and ``/health``.

Page data (positions, fills, the P&L) and the operator's warnings change for
different reasons, so they live apart: this holds the latches (raise at once,
clear slowly: ``web/conditions.py``) and the few reads the warnings need (a
store ping, the open hedges); the pure rules are in ``web/alerts.py`` and
``web/health.py``. ``DashboardState`` owns one and hands its methods on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import StoreError
from ..ha.role import Role
from ..store.read_models import DashboardReads
from .alerts import ALERT_KINDS, alert_list, count_by_kind, stuck_alert
from .broker_auth import auth_problem, token_status
from .conditions import Latch
from .exposure import ExposureWatch
from .extended_view import stuck_threshold
from .health import (
    broker_check,
    detect_source_fault,
    engine_check,
    failing_since,
    health_json,
    source_check,
    standby_checks,
    store_check,
)
from .status_view import source_condition

if TYPE_CHECKING:
    from ..services import AppServices


@attrs.define
class Monitor:
    """Latched problems, the alerts they raise and readiness, observed about once a second."""

    app: AppServices
    reads: DashboardReads
    current_positions: Callable[[], Sequence[dict[str, Any]]]
    """The page's position rows as they are now (exposure growth is judged on them)."""
    stuck_after: float
    stall_after: float
    clear_after: float
    """Seconds a failed check or an alert must stay good before it clears (hysteresis)."""
    latches: dict[str, Latch] = attrs.field(factory=dict)
    alert_counts: dict[str, int] = attrs.field(factory=dict)
    ready_cache: bool = False
    """Whether the last /health was ready (``st0x_ready``)."""
    store_up: bool = False
    """The store check of the last /health (``st0x_store_up``)."""
    _exposure_watch: ExposureWatch = attrs.field(factory=ExposureWatch)

    def role(self) -> Role:
        """This process's role (``run`` puts it in ``extras``; a lone instance leads)."""
        role = self.app.extras.get("role")
        return role if isinstance(role, Role) else Role()

    def broker_auth(self) -> dict[str, Any] | None:
        """The broker's token status, when its plugin publishes one (else None)."""
        return token_status(self.app.extras)

    def source_fault(self) -> str | None:
        """What is wrong with the fill source right now (no hysteresis), or None."""
        return detect_source_fault(self.app.engine.status, self.app.source, self.stall_after)

    def source_stalled(self) -> str | None:
        """The source's problem as reported: held until it has been good for a while."""
        latch = self.latches.get("source")
        return None if latch is None else latch.problem

    def broker_fault(self) -> str | None:
        """The broker's problem as reported (re-authorisation or an error), held likewise."""
        latch = self.latches.get("broker")
        return None if latch is None else latch.problem

    def _latch(self, key: str, *, lenient: bool = True) -> Latch:
        latch = self.latches.get(key)
        if latch is None:
            latch = self.latches[key] = Latch(self.clear_after, lenient=lenient)
        return latch

    def observe(self) -> None:
        """One observation of the engine's and the source's state for the latches.

        The dashboard makes one about every second (its follow loop) and one per
        ``/health``, ``/metrics`` and state request; what they report is the latched
        value, so a condition that comes and goes between observations stays raised.
        """
        status = self.app.engine.status
        self._latch("source").observe(self.source_fault())
        self._latch("broker").observe(status.auth_required or status.broker_error)
        self._latch("alert:broker_error").observe(status.broker_error)
        auth = auth_problem(status.auth_required, self.broker_auth())
        self._latch("alert:auth_required").observe(auth)

    def source_view(self) -> dict[str, Any]:
        """The source's condition in one word (the page's chip) and what explains it."""
        latch = self.latches.get("source")
        return source_condition(
            self.app.engine.status,
            self.app.source,
            self.source_stalled(),
            None if latch is None else latch.since,
        )

    def _exposure_grew(self, kind: str, active: bool) -> bool:
        """While ``kind`` is active: has any symbol's unhedged exposure grown since it began?"""
        return self._exposure_watch.grew(kind, active, self.current_positions())

    async def _stuck_alerts(self) -> list[dict[str, Any]]:
        """Open hedges without progress for longer than their threshold, each latched."""
        now = datetime.now(UTC)
        stuck: dict[str, str] = {}
        for h in await self.reads.open_hedges():
            cid, symbol, state, updated = h.client_order_id, h.symbol, h.state, h.updated_at
            age = (now - datetime.fromisoformat(updated)).total_seconds()
            if age > stuck_threshold(self.app, self.stuck_after, cid):
                stuck[cid] = f"{symbol} hedge {cid} {state} for {age:.0f}s"
        alerts: list[dict[str, Any]] = []
        for cid in sorted(stuck.keys() | {k[6:] for k in self.latches if k.startswith("stuck:")}):
            latch = self._latch("stuck:" + cid, lenient=False)
            message = latch.observe(stuck.get(cid))
            if message is None:
                del self.latches["stuck:" + cid]
                continue
            alerts.append(stuck_alert(cid, message))
        return alerts

    async def alerts(self) -> list[dict[str, Any]]:
        """Active alerts. Each is raised at once and held until its condition has been
        good for ``clear_after`` seconds (``docs/dashboard.md``, "Hysteresis")."""
        if not self.role().leader:  # a standby's engine does not run: the leader alerts
            self.alert_counts = dict.fromkeys(ALERT_KINDS, 0)
            return []
        self.observe()
        status = self.app.engine.status
        stalled = self.source_stalled()
        stuck = await self._stuck_alerts()
        token = self.broker_auth()
        broker_error = self.latches["alert:broker_error"].problem
        alerts = alert_list(
            status,
            stalled=stalled,
            stuck=stuck,
            auth_required=self.latches["alert:auth_required"].problem,
            token=token,
            broker_error=broker_error,
            broker_error_grew=self._exposure_grew("broker_error", broker_error is not None),
            paused_grew=self._exposure_grew("paused", status.paused is not None),
        )
        self.alert_counts = count_by_kind(alerts)
        return alerts

    async def _store_problem(self, known: str | None) -> str | None:
        """The store check, latched: ``known`` (the engine's store's outage), unless the
        page's own connection cannot even ping."""
        try:
            await self.reads.ping()
            problem = known
        except (StoreError, RuntimeError, ValueError) as exc:
            problem = str(exc)
        return self._latch("store").observe(problem)

    async def _standby_health(self, role: Role) -> dict[str, Any]:
        """A standby is ready when it reads the database and knows who leads."""
        store_problem = await self._store_problem(None)
        result = health_json(role, standby_checks(store_problem, role), {}, None)
        self.ready_cache = result["status"] == "ready"
        return result

    async def health(self) -> dict[str, Any]:
        """Readiness: store readable, fill source reachable and caught up, broker reachable.

        Failures are latched (:class:`Latch`): once a check has passed, a failure keeps
        it failing until it has been good for ``clear_after`` seconds; ``since`` says
        when each failing check first failed. A standby (``"role": "standby"``) has
        no source or broker of its own: it is ready when it reads the database.
        """
        role = self.role()
        if not role.leader:
            return await self._standby_health(role)
        self.observe()
        status = self.app.engine.status
        # The engine's store knows when the database stopped answering (it waits and
        # retries meanwhile); the page's own connection is asked too.
        outage = getattr(getattr(self.app.store, "outage", None), "detail", None)
        store_problem = await self._store_problem(outage)
        self.store_up = store_problem is None
        caught_up = getattr(self.app.source, "caught_up", None)
        checks = {
            "store": store_check(store_problem),
            "source": source_check(self.source_stalled(), status.source_state, caught_up),
            "broker": broker_check(self.broker_fault(), status.market_checked_at),
            "engine": engine_check(self.app.engine.stopping),
        }
        result = health_json(role, checks, failing_since(checks, self.latches), status.paused)
        self.ready_cache = result["status"] == "ready"
        return result

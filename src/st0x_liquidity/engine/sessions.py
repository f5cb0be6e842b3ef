"""The session tracker: which session each opted-in symbol is in, from the broker's calendar.

Active only when ``[extended_hours]`` opts a symbol in and the executor is an
:class:`~st0x_liquidity.protocols.ExtendedHoursExecutor`; otherwise every
symbol is regular-hours only and the engine behaves as it always did. The
calendar and the symbols' eligibility are read on start, every
``calendar_refresh`` seconds, and after a failure with backoff (hedges outside
regular hours wait until a calendar was read). Every ``check_interval`` it
offers the opted-in symbols to the engine again, which is what places a
waiting hedge when a session opens, retries one the loss bound held back, and
lets the order lifecycle's repricing run on schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..backoff import backoff_delay
from ..domain.calendar_record import KEY as CALENDAR_KEY
from ..domain.calendar_record import NAMESPACE as CALENDAR_NAMESPACE
from ..domain.calendar_record import CalendarRecord
from ..domain.numbers import fmt
from ..domain.orders import LimitOrder
from ..domain.sessions import (
    Session,
    SessionWindow,
    SymbolEligibility,
    TradingDay,
    enabled_sessions,
    hedgeable_seconds,
    session_at,
    session_windows,
)
from ..domain.symbols import Symbol
from ..errors import BrokerError
from ..protocols import ExtendedHoursExecutor
from .state import EngineContext, log

REGULAR_ONLY = frozenset({Session.REGULAR})


class SessionTracker:
    def __init__(self, engine: EngineContext) -> None:
        self.engine = engine
        self.config = engine.config.extended_hours
        executor = engine.executor
        self.executor: ExtendedHoursExecutor | None = (
            executor
            if self.config.enabled and isinstance(executor, ExtendedHoursExecutor)
            else None
        )
        self.days: list[TradingDay] = []
        self._windows: dict[bool, list[SessionWindow]] = {False: [], True: []}
        self.eligibility: dict[str, SymbolEligibility] = {}
        self.overnight = False
        self.loaded_at: datetime | None = None
        self.loaded = asyncio.Event()

    @property
    def active(self) -> bool:
        return self.executor is not None

    def opted_in(self, ticker: str) -> bool:
        return self.active and self.config.symbol(ticker) is not None

    def enabled(self, ticker: str) -> frozenset[Session]:
        own = self.config.symbol(ticker)
        if not self.active or own is None or self.loaded_at is None:
            return REGULAR_ONLY
        return enabled_sessions(
            extended=True,
            overnight=own.overnight and self.overnight,
            eligibility=self.eligibility.get(ticker),
        )

    def windows(self, ticker: str) -> list[SessionWindow]:
        return self._windows[Session.OVERNIGHT in self.enabled(ticker)]

    def session(self, ticker: str, now: datetime) -> tuple[SessionWindow, SessionWindow | None]:
        return session_at(self.windows(ticker), now, self.enabled(ticker))

    def regular(self, ticker: str, now: datetime) -> bool | None:
        """Whether the calendar has ``ticker`` in regular hours at ``now``; None when no
        calendar speaks (sessions not in use, not read yet, or not covering ``now``: an
        empty or short calendar must not stop market hedges the broker's clock allows)."""
        if not self.active or self.loaded_at is None or not self.days:
            return None
        if not self.days[0].date - timedelta(days=1) <= now.date() <= self.days[-1].date:
            return None
        return self.session(ticker, now)[0].session is Session.REGULAR

    def hedgeable_hours_per_week(self, ticker: str) -> float:
        """Hours of the next seven days (from the start of today's calendar) the symbol can
        be hedged in, as configured and allowed."""
        windows = self.windows(ticker)
        if not windows:
            return 0.0
        start = self.days[0].regular_open.replace(hour=0, minute=0, second=0, microsecond=0)
        week = hedgeable_seconds(windows, self.enabled(ticker), start, start + timedelta(days=7))
        return round(week / 3600, 2)

    def snapshot(self, now: datetime) -> dict[str, Any]:
        """Per opted-in symbol: session now and next, allowed sessions, hedgeable hours."""
        symbols: dict[str, Any] = {}
        for ticker in sorted(self.config.symbols):
            current, following = self.session(ticker, now)
            eligibility = self.eligibility.get(ticker)
            symbols[ticker] = {
                "session": current.session.value,
                "until": current.end.isoformat()
                if following or current.session is not Session.CLOSED
                else None,
                "next_session": None if following is None else following.session.value,
                "next_hedge_at": (
                    now.isoformat()
                    if current.session is not Session.CLOSED
                    else None
                    if following is None
                    else following.start.isoformat()
                ),
                "enabled": sorted(s.value for s in self.enabled(ticker)),
                "overnight_opt_in": self.config.symbols[ticker].overnight,
                "eligible": None
                if eligibility is None
                else {
                    "extended": eligibility.extended,
                    "overnight": eligibility.overnight,
                    "overnight_halted": eligibility.overnight_halted,
                },
                "hedgeable_hours_per_week": self.hedgeable_hours_per_week(ticker),
            }
        return {
            "active": self.active,
            "calendar_loaded_at": None if self.loaded_at is None else self.loaded_at.isoformat(),
            "overnight_available": self.overnight,
            "symbols": symbols,
        }

    def operator_view(
        self, now: datetime, limits: Mapping[str, tuple[LimitOrder, datetime]]
    ) -> dict[str, Any]:
        """:meth:`snapshot` plus the live limit orders, their reference and age."""
        view = self.snapshot(now)
        view["now"] = now.isoformat()
        view["limits"] = [
            {
                "client_order_id": cid,
                "symbol": order.symbol.ticker,
                "side": order.side.value,
                "quantity": fmt(order.quantity),
                "limit_price": fmt(order.limit_price),
                "session": order.session.value,
                "reference_price": fmt(order.reference_price),
                "reference_source": order.reference_source,
                "since": since.isoformat(),
                "age_seconds": round((now - since).total_seconds(), 3),
            }
            for cid, (order, since) in sorted(limits.items())
        ]
        return view

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        if self.executor is None:
            if self.config.enabled:
                log.warning(
                    "[extended_hours] opts symbols in, but broker %s cannot trade outside "
                    "regular hours: they hedge in regular hours only",
                    getattr(self.engine.executor, "name", "?"),
                )
            return
        attempt = 0
        next_refresh = 0.0
        loop = asyncio.get_running_loop()
        while not self.engine.stopping:
            if not await self.engine.wait_for_broker():
                return
            if loop.time() >= next_refresh:
                try:
                    await self.refresh()
                    attempt = 0
                    next_refresh = loop.time() + self.config.calendar_refresh
                except BrokerError as exc:
                    attempt += 1
                    delay = backoff_delay(
                        attempt, 1.0, self.config.calendar_refresh, self.engine.rng
                    )
                    self.engine.status.calendar_error = str(exc)
                    log.warning(
                        "broker calendar unavailable (%s); asking again in %.1fs", exc, delay
                    )
                    next_refresh = loop.time() + delay
            if self.loaded_at is not None:  # the opted-in symbols that have a book
                try:
                    self.engine.hedge_symbols(
                        [t for t in sorted(self.config.symbols) if t in self.engine.books]
                    )
                except Exception:  # a bug must not end the session checks for good
                    log.exception("extended hours: offering the symbols failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.engine.stop_event.wait(),
                    min(self.config.check_interval, max(0.05, next_refresh - loop.time())),
                )

    async def _keep(self, loaded_at: datetime) -> None:
        """Keep the calendar in the store for ``positions`` (offline); a failure only warns."""
        record = CalendarRecord(
            loaded_at, datetime.now(UTC), self.overnight, tuple(self.days), dict(self.eligibility)
        )
        try:
            await self.engine.store.put_blob(CALENDAR_NAMESPACE, CALENDAR_KEY, record.to_json())
        except Exception as exc:  # informational only: hedging does not depend on it
            log.warning("could not keep the broker calendar for `positions`: %s", exc)

    async def refresh(self) -> None:
        """Read the calendar and the symbols' eligibility (raises BrokerError)."""
        executor = self.executor
        assert executor is not None
        today = self.engine.now().date()
        days = await executor.trading_days(
            today - timedelta(days=1), today + timedelta(days=self.config.calendar_days)
        )
        symbols: Sequence[Symbol] = [Symbol(t) for t in sorted(self.config.symbols)]
        eligibility = await executor.eligibility(symbols)
        self.overnight = executor.overnight_available()
        self.days = sorted(days, key=lambda d: d.date)
        self._windows = {
            False: session_windows(self.days, overnight=False),
            True: session_windows(self.days, overnight=True),
        }
        self.eligibility = {s.ticker: e for s, e in eligibility.items()}
        first = self.loaded_at is None
        self.loaded_at = self.engine.now()
        self.engine.status.calendar_error = None
        self.loaded.set()
        await self._keep(self.loaded_at)
        if first:
            for ticker in sorted(self.config.symbols):
                log.info(
                    "%s hedges in %s (%.1f h/week)",
                    ticker,
                    ", ".join(sorted(s.value for s in self.enabled(ticker))),
                    self.hedgeable_hours_per_week(ticker),
                )
        want_overnight = [t for t, s in self.config.symbols.items() if s.overnight]
        if want_overnight and not self.overnight and first:
            log.warning(
                "overnight opted in for %s, but the broker account has no overnight session",
                ", ".join(sorted(want_overnight)),
            )

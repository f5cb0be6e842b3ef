"""What Alpaca says about trading outside regular hours, cached sensibly (both APIs).

* the calendar (regular and extended day per date) is read on each call: the
  engine asks for a window and keeps the answer;
* each symbol's eligibility (asset ``attributes``) is kept until the next
  19:55 New York or ``eligibility_max_age`` seconds, whichever comes first:
  Alpaca rebuilds its overnight list between 19:05 and 19:45 ET and suggests
  refreshing at about 19:55. A failed refresh keeps the last answer (logged)
  rather than dropping a symbol mid-session;
* the account configuration (``disable_overnight_trading``) is read at start
  and again every ``eligibility_max_age`` seconds by ``maintenance`` (a minute
  after a failed read); overnight
  is used only if the operator opted in (``overnight_trading = true``) and the
  account does not disable it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from st0x_liquidity import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    BrokerError,
    RetryableBrokerError,
    Symbol,
    SymbolEligibility,
    TradingDay,
)

from .api import AlpacaTradingEndpoints
from .session_wire import (
    parse_eligibility,
    parse_mark,
    parse_overnight_disabled,
    parse_session_calendar,
)
from .wire import NEW_YORK

log = logging.getLogger(__name__)

CONFIG_RETRY = 60.0
"""Seconds before an unreadable account configuration is asked for again."""

ELIGIBILITY_REFRESH = time(19, 55)
"""New York time after which the day's overnight list is final (Alpaca's advice)."""


def next_refresh(now: datetime, max_age: float) -> datetime:
    """The earlier of ``now + max_age`` and the next 19:55 New York after ``now``."""
    local = now.astimezone(NEW_YORK)
    boundary = datetime.combine(local.date(), ELIGIBILITY_REFRESH, NEW_YORK)
    if boundary <= local:
        boundary = datetime.combine(local.date() + timedelta(days=1), ELIGIBILITY_REFRESH, NEW_YORK)
    return min(now + timedelta(seconds=max_age), boundary)


class AlpacaSessionInfo:
    """Calendar, eligibility, overnight switch and position marks for one account."""

    def __init__(
        self,
        endpoints: AlpacaTradingEndpoints,
        *,
        name: str,
        overnight_opt_in: bool,
        max_age: float,
        now: Callable[[], datetime],
    ) -> None:
        self.endpoints = endpoints
        self.name = name
        self.overnight_opt_in = overnight_opt_in
        self.max_age = max_age
        self._now = now
        self._eligibility: dict[Symbol, tuple[SymbolEligibility | None, datetime]] = {}
        self.overnight_disabled: bool | None = None
        """The account's ``disable_overnight_trading`` (None: not read / not reported)."""
        self._configuration_due: datetime | None = None

    async def trading_days(self, start: date, end: date) -> list[TradingDay]:
        if end < start:
            return []
        days = parse_session_calendar(await self.endpoints.get_calendar_json(start, end))
        return [d for d in days if start <= d.date <= end]

    async def eligibility(self, symbols: Sequence[Symbol]) -> dict[Symbol, SymbolEligibility]:
        now = self._now()
        result: dict[Symbol, SymbolEligibility] = {}
        for symbol in dict.fromkeys(symbols):
            value = await self._one(symbol, now)
            if value is not None:
                result[symbol] = value
        return result

    async def _one(self, symbol: Symbol, now: datetime) -> SymbolEligibility | None:
        cached = self._eligibility.get(symbol)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            data = await self.endpoints.get_asset_json(str(symbol))
            value = None if data is None else parse_eligibility(data)
        except AuthenticationRequiredError:
            raise
        except (RetryableBrokerError, AmbiguousBrokerError) as exc:
            if cached is None:
                raise
            log.warning("%s: eligibility of %s not refreshed (%s); keeping the last", self.name, symbol, exc)
            return cached[0]
        if data is None:
            log.info("%s: Alpaca has no asset %s: not eligible outside regular hours", self.name, symbol)
        self._eligibility[symbol] = (value, next_refresh(now, self.max_age))
        return value

    def overnight_available(self) -> bool:
        return self.overnight_opt_in and self.overnight_disabled is False

    async def refresh_configuration(self, *, force: bool = False) -> None:
        """Read ``disable_overnight_trading`` (only when the operator opted in to
        overnight). A failure leaves overnight unavailable until the next try."""
        if not self.overnight_opt_in:
            return
        now = self._now()
        if not force and self._configuration_due is not None and now < self._configuration_due:
            return
        self._configuration_due = now + timedelta(seconds=self.max_age)
        try:
            disabled = parse_overnight_disabled(await self.endpoints.get_configurations_json())
        except AuthenticationRequiredError:
            raise
        except BrokerError as exc:
            log.warning("%s: account configuration unreadable (%s): overnight off", self.name, exc)
            self.overnight_disabled = None
            self._configuration_due = now + timedelta(seconds=min(CONFIG_RETRY, self.max_age))
            return
        if disabled is None:
            log.warning(
                "%s: the account configuration has no disable_overnight_trading: "
                "overnight stays off",
                self.name,
            )
        elif disabled:
            log.warning(
                "%s: overnight_trading is set but the account has disable_overnight_trading",
                self.name,
            )
        self.overnight_disabled = disabled

    async def position_mark(self, symbol: Symbol) -> Decimal | None:
        data = await self.endpoints.get_position_json(str(symbol))
        return None if data is None else parse_mark(data)

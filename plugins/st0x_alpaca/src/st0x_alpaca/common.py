"""What the Trading API and Broker API executors share: config knobs and order flow."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import attrs

from st0x_liquidity import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    FinalBrokerError,
    HedgeOrder,
    Inventory,
    LimitOrder,
    MarketClock,
    MarketOrder,
    OrderRules,
    OrderUpdate,
    RetryableBrokerError,
    Secret,
    Session,
    Symbol,
    SymbolEligibility,
    TradingDay,
    fmt,
    round_down,
)
from st0x_liquidity.validators import at_least_one, non_negative, positive

from .api import AlpacaTradingEndpoints, check_order_id
from .http import AlpacaHttp, AlpacaNotFound, AlpacaRejection, HttpSettings
from .session_wire import limit_order_body
from .sessions import AlpacaSessionInfo
from .wire import QTY_DECIMALS, AlpacaOrder, MalformedReplyError

log = logging.getLogger(__name__)

MAX_CLIENT_ORDER_ID = 48
"""Alpaca documents ``client_order_id`` as at most 48 characters."""


@attrs.frozen(kw_only=True)
class AlpacaCommonConfig:
    """``[broker]`` keys both Alpaca executors understand.

    ``api_key`` / ``api_secret`` may come from ``ST0X_BROKER_API_KEY`` /
    ``ST0X_BROKER_API_SECRET`` instead of the file.
    """

    api_key: Secret
    api_secret: Secret
    base_url: str | None = None
    min_notional: Decimal = attrs.field(default=Decimal(2), validator=non_negative)
    timeout: float = attrs.field(default=10.0, validator=positive)
    connect_timeout: float = attrs.field(default=5.0, validator=positive)
    rate_limit_per_minute: float = attrs.field(default=190.0, validator=positive)
    rate_limit_burst: int = attrs.field(default=10, validator=at_least_one)
    max_attempts: int = attrs.field(default=4, validator=at_least_one)
    backoff_initial: float = attrs.field(default=0.5, validator=positive)
    backoff_max: float = attrs.field(default=8.0, validator=positive)
    retry_after_max: float = attrs.field(default=60.0, validator=positive)
    resolve_attempts: int = attrs.field(default=3, validator=at_least_one)
    overnight_trading: bool = False
    """Use Alpaca's overnight (24/5) session when the account has it enabled."""
    eligibility_max_age: float = attrs.field(default=900.0, validator=positive)
    """Seconds an asset's extended-hours eligibility (and the account configuration)
    is trusted before it is read again (also refreshed after 19:55 New York)."""

    def http_settings(self, base_url: str) -> HttpSettings:
        return HttpSettings(
            base_url=base_url,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            rate_limit_per_minute=self.rate_limit_per_minute,
            rate_limit_burst=self.rate_limit_burst,
            max_attempts=self.max_attempts,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
            retry_after_max=self.retry_after_max,
        )


def alpaca_client_order_id(client_order_id: str) -> str:
    """The id sent to Alpaca: the engine's own if it fits in 48 characters, else a
    deterministic shortening (head plus a SHA-256 digest), so lookups after a
    crash compute the same id."""
    if len(client_order_id) <= MAX_CLIENT_ORDER_ID:
        return client_order_id
    digest = hashlib.sha256(client_order_id.encode()).hexdigest()[:16]
    return f"{client_order_id[: MAX_CLIENT_ORDER_ID - 17]}-{digest}"


def order_body(order: MarketOrder) -> dict[str, object]:
    """The JSON body of a hedge: fractional-capable market ``day`` order.

    The quantity is cut (never rounded up) to Alpaca's nine decimals so the
    order never exceeds the hedge decision.
    """
    if not isinstance(order.quantity, Decimal) or not order.quantity.is_finite():
        raise FinalBrokerError(f"quantity must be a finite Decimal, got {order.quantity!r}")
    qty = round_down(order.quantity, QTY_DECIMALS)
    if qty <= 0:
        raise FinalBrokerError(
            f"quantity {fmt(order.quantity) if order.quantity > 0 else order.quantity} "
            f"is below Alpaca's smallest fractional unit"
        )
    if not order.client_order_id:
        raise FinalBrokerError("client_order_id must not be empty")
    cid = alpaca_client_order_id(order.client_order_id)
    return {
        "symbol": str(order.symbol),
        "qty": fmt(qty),
        "side": order.side.value.lower(),
        "type": "market",
        "time_in_force": "day",
        "extended_hours": False,
        "client_order_id": cid,
    }


class AlpacaExecutorBase:
    """Order placement, lookup and inventory over :class:`AlpacaTradingEndpoints`."""

    name = "alpaca"

    def __init__(
        self,
        config: AlpacaCommonConfig,
        *,
        http: AlpacaHttp,
        endpoints: AlpacaTradingEndpoints,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.http = http
        self.endpoints = endpoints
        self.base_url = http.settings.base_url
        self._now = now
        self._rules = OrderRules.fractional_shares(QTY_DECIMALS, config.min_notional)
        self.sessions = AlpacaSessionInfo(
            endpoints,
            name=self.name,
            overnight_opt_in=config.overnight_trading,
            max_age=config.eligibility_max_age,
            now=now,
        )

    @property
    def stats(self) -> dict[str, int]:
        """HTTP counters for ``/metrics``: ``request_errors`` and ``rate_limited`` (429s)."""
        return self.http.stats

    @property
    def order_rules(self) -> OrderRules:
        return self._rules

    async def start(self) -> None:
        await self.http.open()
        account = await self.endpoints.get_account()
        if account.status != "ACTIVE":
            raise FinalBrokerError(f"Alpaca account is {account.status}, not ACTIVE")
        if account.account_blocked or account.trading_blocked:
            raise FinalBrokerError("Alpaca account is blocked from trading")
        log.info("%s: connected to %s (account active)", self.name, self.base_url)
        await self.sessions.refresh_configuration(force=True)

    async def close(self) -> None:
        await self.http.close()

    async def place_market_order(self, order: MarketOrder) -> OrderUpdate:
        body = order_body(order)
        cid = str(body["client_order_id"])
        if body["qty"] != fmt(order.quantity):
            log.info(
                "%s: %s quantity %s cut to Alpaca's grid: %s",
                self.name,
                cid,
                fmt(order.quantity),
                body["qty"],
            )
        log.info("%s: placing %s %s %s (%s)", self.name, body["side"], body["qty"], order.symbol, cid)
        return await self._submit(body, order)

    async def _submit(self, body: dict[str, object], order: HedgeOrder) -> OrderUpdate:
        """POST ``body``; a lost answer is resolved by ``client_order_id``, a duplicate
        ``client_order_id`` answered with the order that already has it (never re-sent)."""
        cid = str(body["client_order_id"])
        try:
            placed = await self.endpoints.submit_order(body)
            return self._checked(placed, order)
        except (AmbiguousBrokerError, MalformedReplyError) as exc:
            # Sent, but the answer is lost or unreadable: the order may exist.
            log.warning("%s: outcome of %s unknown (%s); looking it up", self.name, cid, exc)
            return _with_cid(await self._resolve(cid, str(exc)), order.client_order_id)
        except AlpacaRejection as exc:
            if exc.duplicate_client_order_id:
                existing = await self.endpoints.get_order_by_client_id(cid)
                if existing is not None:
                    log.info("%s: %s already placed as %s", self.name, cid, existing.id)
                    return _readable(lambda: self._checked(existing, order), cid)
            raise

    def _checked(self, placed: AlpacaOrder, order: HedgeOrder) -> OrderUpdate:
        sent = alpaca_client_order_id(order.client_order_id)
        if placed.client_order_id and placed.client_order_id != sent:
            log.warning(
                "%s: Alpaca answered order %s with client_order_id %s, expected %s",
                self.name,
                placed.id,
                placed.client_order_id,
                sent,
            )
        if placed.symbol != str(order.symbol):
            log.warning(
                "%s: order %s is for %s, expected %s", self.name, placed.id, placed.symbol, order.symbol
            )
        return _with_cid(placed.to_update(), order.client_order_id)

    async def _resolve(self, cid: str, problem: str) -> OrderUpdate:
        """Find the order an unanswered POST may have created; never re-POST."""
        for attempt in range(1, self.config.resolve_attempts + 1):
            try:
                found = await self.endpoints.get_order_by_client_id(cid)
            except AuthenticationRequiredError:
                raise
            except (RetryableBrokerError, AmbiguousBrokerError) as exc:
                log.warning("%s: looking up %s failed: %s", self.name, cid, exc)
                found = None
            if found is not None:
                log.info("%s: %s exists at Alpaca as %s", self.name, cid, found.id)
                return _readable(found.to_update, cid)
            if attempt < self.config.resolve_attempts:
                await asyncio.sleep(
                    min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1))
                )
        raise AmbiguousBrokerError(
            f"{problem}; no order with client_order_id {cid} found at Alpaca yet"
        )

    async def order_status(self, broker_order_id: str) -> OrderUpdate:
        return (await self.endpoints.get_order(broker_order_id)).to_update()

    async def find_order(self, client_order_id: str, order: HedgeOrder) -> OrderUpdate | None:
        found = await self.endpoints.get_order_by_client_id(
            alpaca_client_order_id(client_order_id)
        )
        return None if found is None else _with_cid(found.to_update(), client_order_id)

    async def market_clock(self) -> MarketClock:  # pragma: no cover - overridden
        raise NotImplementedError

    async def inventory(self) -> Inventory:
        positions = await self.endpoints.get_positions()
        if positions.skipped:
            log.debug("%s: non-equity positions left out: %s", self.name, positions.skipped)
        account = await self.endpoints.get_account()
        return Inventory(positions=positions.equities, cash=account.cash, as_of=self._now())

    async def maintenance(self) -> None:
        await self.sessions.refresh_configuration()

    # -- outside regular hours (ExtendedHoursExecutor) ----------------------------------

    async def trading_days(self, start: date, end: date) -> list[TradingDay]:
        return await self.sessions.trading_days(start, end)

    async def eligibility(self, symbols: Sequence[Symbol]) -> dict[Symbol, SymbolEligibility]:
        return await self.sessions.eligibility(symbols)

    def overnight_available(self) -> bool:
        return self.sessions.overnight_available()

    async def position_mark(self, symbol: Symbol) -> Decimal | None:
        return await self.sessions.position_mark(symbol)

    async def place_limit_order(self, order: LimitOrder) -> OrderUpdate:
        """``limit`` + ``day`` + ``extended_hours``; errors as for market orders."""
        if not order.client_order_id:
            raise FinalBrokerError("client_order_id must not be empty")
        if order.session is Session.OVERNIGHT and not self.overnight_available():
            raise FinalBrokerError(
                "overnight limit refused: overnight trading is not enabled for this account"
            )
        body = limit_order_body(order, alpaca_client_order_id(order.client_order_id))
        log.info(
            "%s: placing %s %s %s limit %s, %s session (%s; reference %s from %s)",
            self.name,
            body["side"],
            body["qty"],
            order.symbol,
            body["limit_price"],
            order.session.value,
            body["client_order_id"],
            fmt(order.reference_price),
            order.reference_source,
        )
        return await self._submit(body, order)

    async def cancel_order(self, broker_order_id: str) -> OrderUpdate:
        """Ask Alpaca to cancel, then read the order: it may be ``pending_cancel``, or
        have filled first. 422 (no longer cancelable) is not an error here: the
        order's final state is the answer. 404 stays a FinalBrokerError."""
        order_id = check_order_id(broker_order_id)
        try:
            await self.endpoints.cancel_order(order_id)
        except AlpacaNotFound:
            raise
        except AlpacaRejection as exc:
            if exc.status != 422:
                raise
            log.info("%s: order %s not cancelable (%s); reading it", self.name, order_id, exc.api_message)
        return await self.order_status(order_id)


def _with_cid(update: OrderUpdate, client_order_id: str) -> OrderUpdate:
    """Report the engine's own client_order_id, whatever was sent to Alpaca."""
    if update.client_order_id in (None, alpaca_client_order_id(client_order_id)):
        return attrs.evolve(update, client_order_id=client_order_id)
    return update


def _readable(make: Callable[[], OrderUpdate], cid: str) -> OrderUpdate:
    """The order exists at Alpaca; if its state cannot be read, the outcome is ambiguous
    (never "retryable": that would invite placing it again)."""
    try:
        return make()
    except MalformedReplyError as exc:
        raise AmbiguousBrokerError(
            f"order {cid} exists at Alpaca but its state is unreadable: {exc}"
        ) from None

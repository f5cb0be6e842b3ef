"""The ``schwab`` executor: whole-share market orders through the Schwab Trader API,
and limit orders in its AM / PM / SEAMLESS sessions outside regular hours."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from st0x_liquidity import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    BrokerError,
    ConfigError,
    Direction,
    FinalBrokerError,
    HedgeOrder,
    Inventory,
    LimitOrder,
    MarketClock,
    MarketOrder,
    OrderRules,
    OrderState,
    OrderUpdate,
    Position,
    PositionStore,
    Symbol,
    SymbolEligibility,
    TradingDay,
    fmt,
)

from .config import SchwabConfig
from .crypto import TokenDecryptionError
from .http import Kind, Reply, SchwabHttp, Unauthorized
from .parsing import (
    MarketDay,
    SchwabOrder,
    SchwabReplyError,
    decode_json,
    format_time,
    order_id_from_location,
    order_update,
    parse_account_positions,
    parse_accounts,
    parse_market_hours,
    parse_order,
    parse_order_list,
)
from .session_hours import limit_body, parse_trading_day
from .session_hours import position_mark as mark_of
from .tokens import NAMESPACE, AuthStatus, TokenManager, auth_required

log = logging.getLogger(__name__)

EASTERN = ZoneInfo("America/New_York")
_LOOKAHEAD_DAYS = 10
_MAX_CALENDAR_DAYS = 31

_MATCHING_INSTRUCTIONS = {
    Direction.BUY: {"BUY", "BUY_TO_COVER"},
    Direction.SELL: {"SELL", "SELL_SHORT"},
}


def _attempt_key(client_order_id: str) -> str:
    return f"attempt/{client_order_id}"


class SchwabExecutor:
    """Places whole-share market orders at Schwab and follows them to the end.

    Schwab has no client order id. Before each POST the executor records the
    attempt (time, symbol, side, quantity) in the store; :meth:`find_order`
    uses that record to answer "definitely not placed" without asking Schwab,
    or to search Schwab's order list in the attempt's time window.
    """

    name = "schwab"

    def __init__(
        self,
        config: SchwabConfig,
        store: PositionStore,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.store = store
        self._now = now
        self._sleep = sleep
        self.http = SchwabHttp(
            config.api_root,
            timeout=config.request_timeout,
            max_retries=config.max_retries,
            backoff=config.retry_backoff,
            per_minute=config.requests_per_minute,
            sleep=sleep,
        )
        self.tokens = TokenManager(config, store, self.http, now=now)
        self._account_hash: str | None = None
        self._day_cache: dict[date, tuple[datetime, MarketDay]] = {}
        self._hours_cache: dict[date, tuple[datetime, TradingDay | None]] = {}
        self._last_auth_problem: str | None = None

    @property
    def order_rules(self) -> OrderRules:
        return OrderRules.whole_shares()

    @property
    def stats(self) -> dict[str, int]:
        """HTTP counters for ``/metrics``: ``request_errors`` and ``rate_limited`` (429s)."""
        return self.http.stats

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and check the stored login.

        A missing, expired or revoked login is logged, not raised: hedging
        pauses on the first broker call until ``schwab auth`` is run. A record
        that cannot be decrypted (wrong key, tampering) stops the start with a
        :class:`ConfigError` naming ``broker.encryption_key``.
        """
        await self.http.start()
        try:
            tokens = await self.tokens.load()
        except TokenDecryptionError as exc:
            await self.http.close()
            raise ConfigError("broker.encryption_key", str(exc)) from None
        if tokens is None:
            log.error("%s", auth_required("no Schwab login is stored"))
            return
        try:
            await self.tokens.maintain()
        except AuthenticationRequiredError as exc:
            log.error("%s", exc)
        except BrokerError as exc:
            log.warning("Schwab token check at start failed, will retry: %s", exc)

    async def close(self) -> None:
        await self.http.close()

    async def auth_status(self) -> AuthStatus:
        """Login state for dashboards and metrics (refresh deadline, warning flag)."""
        return await self.tokens.status()

    # -- authenticated calls -------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        action: str,
        *,
        kind: Kind = "read",
        params: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> Reply:
        for attempt in (1, 2):
            token = await self.tokens.access_token()
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json" if kind == "read" else "*/*",
            }
            try:
                return await self.http.request(
                    method, path, action, kind=kind, headers=headers, params=params,
                    json_body=json_body,
                )
            except Unauthorized as exc:
                if attempt == 2:
                    raise auth_required(f"Schwab keeps refusing fresh access tokens ({exc})") from None
                # 401 means Schwab did not process the request: refresh, try once more.
                log.info("Schwab answered 401 to %s; refreshing the access token", action)
                await self.tokens.refresh(force=True)
        raise AssertionError("unreachable")

    async def account_hash(self) -> str:
        if self._account_hash is not None:
            return self._account_hash
        reply = await self._call("GET", "/trader/v1/accounts/accountNumbers", "account lookup")
        accounts = parse_accounts(reply.body)
        if self.config.account_number is not None:
            wanted = self.config.account_number.strip()
            found = [a for a in accounts if a.number == wanted]
            if not found:
                raise FinalBrokerError(
                    "Schwab account_number is not among the accounts this login can access"
                )
            self._account_hash = found[0].hash_value
        else:
            if self.config.account_index >= len(accounts):
                raise FinalBrokerError(
                    f"Schwab account_index {self.config.account_index} is out of range: "
                    f"this login has {len(accounts)} account(s)"
                )
            self._account_hash = accounts[self.config.account_index].hash_value
        return self._account_hash

    # -- orders ------------------------------------------------------------------------

    def _check(self, order: MarketOrder) -> int:
        qty = order.quantity
        if qty <= 0 or qty != qty.to_integral_value():
            raise FinalBrokerError(
                f"Schwab takes whole shares only; cannot place {fmt(qty)} {order.symbol}"
            )
        return int(qty)

    async def place_market_order(self, order: MarketOrder) -> OrderUpdate:
        shares = self._check(order)
        account = await self.account_hash()
        body = {
            "orderType": "MARKET",
            "session": "NORMAL",
            "duration": "DAY",
            "orderStrategyType": "SINGLE",
            "orderLegCollection": [
                {
                    "instruction": "BUY" if order.side is Direction.BUY else "SELL",
                    "quantity": shares,
                    "instrument": {"symbol": str(order.symbol), "assetType": "EQUITY"},
                }
            ],
        }
        return await self._send(order, body, account, f"{shares} {order.symbol}")

    async def _send(
        self, order: HedgeOrder, body: dict[str, Any], account: str, what: str
    ) -> OrderUpdate:
        """Record the attempt, POST ``body``, record the order id from ``Location``."""
        await self._record_attempt(order)
        reply = await self._call(
            "POST", f"/trader/v1/accounts/{account}/orders", "order placement",
            kind="order", json_body=body,
        )
        lowered = {k.lower(): v for k, v in reply.headers.items()}
        order_id = order_id_from_location(lowered.get("location"))
        if order_id is None:
            raise AmbiguousBrokerError(
                "Schwab accepted the order but sent no usable Location header; "
                "the order id must be found by reconciliation"
            )
        await self._record_attempt(order, broker_order_id=order_id)
        log.info(
            "Schwab order %s placed: %s %s (%s)",
            order_id, order.side.value, what, order.client_order_id,
        )
        return OrderUpdate(
            order_id,
            OrderState.SUBMITTED,
            client_order_id=order.client_order_id,
            updated_at=self._now(),
        )

    async def _record_attempt(self, order: HedgeOrder, broker_order_id: str | None = None) -> None:
        """Note a POST about to be sent (no id) or the order id it produced.

        Written before the POST, so "no record" means "never sent".
        """
        previous = await self._attempt(order.client_order_id) or {}
        now = self._now().isoformat()
        sending = broker_order_id is None
        record = {
            "first_attempt_at": previous.get("first_attempt_at", now),
            "last_attempt_at": now if sending else previous.get("last_attempt_at", now),
            "attempts": int(previous.get("attempts", 0)) + (1 if sending else 0),
            "symbol": str(order.symbol),
            "side": order.side.value,
            "quantity": fmt(order.quantity),
            "broker_order_id": broker_order_id or previous.get("broker_order_id"),
        }
        await self.store.put_blob(
            NAMESPACE, _attempt_key(order.client_order_id), json.dumps(record).encode()
        )

    async def _attempt(self, client_order_id: str) -> dict[str, Any] | None:
        blob = await self.store.get_blob(NAMESPACE, _attempt_key(client_order_id))
        if blob is None:
            return None
        try:
            data = json.loads(blob)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def order_status(self, broker_order_id: str) -> OrderUpdate:
        if not broker_order_id.isdigit():
            raise FinalBrokerError(f"not a Schwab order id: {broker_order_id[:40]!r}")
        account = await self.account_hash()
        reply = await self._call(
            "GET", f"/trader/v1/accounts/{account}/orders/{broker_order_id}", "order status"
        )
        parsed = parse_order(decode_json(reply.body, "order"), broker_order_id)
        if parsed.order_id != broker_order_id:
            raise SchwabReplyError("Schwab answered with a different order than asked for")
        return order_update(parsed)

    async def find_order(self, client_order_id: str, order: HedgeOrder) -> OrderUpdate | None:
        """Find the Schwab order placed for ``client_order_id``, if any.

        1. No attempt record: this executor never sent the POST -> None.
        2. The record holds the order id (the POST answer arrived) -> its status.
        3. Otherwise list Schwab's orders entered from the first attempt (minus
           ``recovery_clock_skew``) until now and take the earliest one with the
           same symbol, side and quantity that no other hedge order claims.
        Residual risk: an order entered by hand in that window with the same
        symbol, side and quantity is indistinguishable and would be taken as ours.
        """
        record = await self._attempt(client_order_id)
        if record is None:
            return None
        if record.get("broker_order_id"):
            update = await self.order_status(str(record["broker_order_id"]))
            return _with_client_id(update, client_order_id)
        try:
            first = datetime.fromisoformat(str(record["first_attempt_at"]))
        except (KeyError, ValueError):
            first = self._now() - timedelta(seconds=self.config.recovery_lookback)
        skew = timedelta(seconds=self.config.recovery_clock_skew)
        start, end = first - skew, self._now() + skew
        account = await self.account_hash()
        reply = await self._call(
            "GET",
            f"/trader/v1/accounts/{account}/orders",
            "order search",
            params={
                "fromEnteredTime": format_time(start),
                "toEnteredTime": format_time(end),
                "maxResults": "3000",
            },
        )
        claimed = await self._claimed_order_ids(client_order_id)
        candidates = [
            o for o in parse_order_list(reply.body)
            if self._matches(o, order, start, end) and o.order_id not in claimed
        ]
        if not candidates:
            log.info("no Schwab order matches %s; it was not placed", client_order_id)
            return None
        candidates.sort(key=lambda o: (o.entered_time or start, o.order_id))
        chosen = candidates[0]
        if len(candidates) > 1:
            log.warning(
                "%d Schwab orders match %s; taking the earliest, %s",
                len(candidates), client_order_id, chosen.order_id,
            )
        await self._record_attempt(order, broker_order_id=chosen.order_id)
        return _with_client_id(order_update(chosen), client_order_id)

    @staticmethod
    def _matches(o: SchwabOrder, order: HedgeOrder, start: datetime, end: datetime) -> bool:
        return (
            o.symbol == str(order.symbol)
            and o.instruction in _MATCHING_INSTRUCTIONS[order.side]
            and o.quantity is not None
            and o.quantity == order.quantity
            and o.entered_time is not None
            and start <= o.entered_time <= end
        )

    async def _claimed_order_ids(self, client_order_id: str) -> set[str]:
        records = await self.store.hedge_orders()
        return {
            r.broker_order_id
            for r in records
            if r.broker_order_id and r.client_order_id != client_order_id
        }

    # -- market hours ------------------------------------------------------------------

    async def _market_day(self, day: date) -> MarketDay:
        cached = self._day_cache.get(day)
        now = self._now()
        if cached is not None and now - cached[0] < timedelta(hours=1):
            return cached[1]
        reply = await self._call(
            "GET", "/marketdata/v1/markets/equity", "market hours",
            params={"date": day.isoformat()},
        )
        parsed = parse_market_hours(reply.body)
        self._day_cache[day] = (now, parsed)
        return parsed

    async def market_clock(self) -> MarketClock:
        """Regular session from Schwab's market-hours endpoint (pre/post market count as closed).

        That endpoint needs a login too, so without one this raises
        :class:`AuthenticationRequiredError` like every other call. The engine
        then keeps hedging paused and reports the problem once; the first clock
        read after ``schwab auth`` clears it. (An estimated clock here made the
        engine take every clock read for a recovered login: it logged the error
        and "authorised again" on every recheck.)
        """
        now = self._now()
        today_et = now.astimezone(EASTERN).date()
        self._day_cache.pop(today_et, None)  # today is always asked afresh
        today = await self._market_day(today_et)
        if today.is_open and today.start and today.end:
            if today.start <= now < today.end:
                return MarketClock(True, next_open=None, next_close=today.end)
            if now < today.start:
                return MarketClock(False, next_open=today.start, next_close=today.end)
        for offset in range(1, _LOOKAHEAD_DAYS + 1):
            day = await self._market_day(today_et + timedelta(days=offset))
            if day.is_open and day.start and day.end:
                return MarketClock(False, next_open=day.start, next_close=day.end)
        return MarketClock(False)

    # -- outside regular hours (ExtendedHoursExecutor) ----------------------------------

    async def _trading_day(self, day: date) -> TradingDay | None:
        cached = self._hours_cache.get(day)
        now = self._now()
        if cached is not None and now - cached[0] < timedelta(hours=1):
            return cached[1]
        reply = await self._call(
            "GET", "/marketdata/v1/markets/equity", "market hours",
            params={"date": day.isoformat()},
        )
        parsed = parse_trading_day(reply.body, day)
        self._hours_cache[day] = (now, parsed)
        return parsed

    async def trading_days(self, start: date, end: date) -> list[TradingDay]:
        """Schwab's equity hours, one request per date (cached for an hour, at most
        31 dates per call): pre-market from ``preMarket``, after-hours from
        ``postMarket``, holidays and half-days as Schwab reports them."""
        if (end - start).days >= _MAX_CALENDAR_DAYS:
            # One request per date shares the order budget: read a month at most.
            log.warning(
                "Schwab market hours: %d days asked, reading the first %d",
                (end - start).days + 1, _MAX_CALENDAR_DAYS,
            )
            end = start + timedelta(days=_MAX_CALENDAR_DAYS - 1)
        days: list[TradingDay] = []
        day = start
        while day <= end:
            found = await self._trading_day(day)
            if found is not None:
                days.append(found)
            day += timedelta(days=1)
        return days

    async def eligibility(self, symbols: Sequence[Symbol]) -> dict[Symbol, SymbolEligibility]:
        """Schwab publishes no per-symbol extended-hours list: every symbol may trade
        pre-market and after-hours (whole shares), none overnight. A symbol Schwab
        refuses comes back as the order's rejection."""
        return {s: SymbolEligibility(extended=True, overnight=False) for s in symbols}

    def overnight_available(self) -> bool:
        """The Trader API has no overnight session (EXTO is thinkorswim only)."""
        return False

    async def place_limit_order(self, order: LimitOrder) -> OrderUpdate:
        """``LIMIT`` + ``DAY`` in session ``AM`` / ``PM`` / ``SEAMLESS`` (see
        :mod:`st0x_schwab.session_hours`); same exactly-once flow as market orders."""
        body = limit_body(order)
        account = await self.account_hash()
        return await self._send(
            order, body, account,
            f"{body['orderLegCollection'][0]['quantity']} {order.symbol} limit {body['price']} "
            f"{body['session']} (reference {fmt(order.reference_price)} from "
            f"{order.reference_source})",
        )

    async def cancel_order(self, broker_order_id: str) -> OrderUpdate:
        """``DELETE …/orders/{id}``, then read the order: the answer is its state after
        the request (still live, ``PENDING_CANCEL``, cancelled or filled first).
        Schwab refuses to cancel an order that already ended (HTTP 400): that is not
        an error here, the read gives its final state; an unknown order fails the
        read with a FinalBrokerError."""
        if not broker_order_id.isdigit():
            raise FinalBrokerError(f"not a Schwab order id: {broker_order_id[:40]!r}")
        account = await self.account_hash()
        try:
            await self._call(
                "DELETE", f"/trader/v1/accounts/{account}/orders/{broker_order_id}",
                "order cancel",
            )
        except AuthenticationRequiredError:
            raise
        except FinalBrokerError as exc:
            log.info("Schwab refused to cancel %s (%s); reading it", broker_order_id, exc)
        return await self.order_status(broker_order_id)

    async def position_mark(self, symbol: Symbol) -> Decimal | None:
        """``marketValue / quantity`` of the account's position (None: none held)."""
        account = await self.account_hash()
        reply = await self._call(
            "GET", f"/trader/v1/accounts/{account}", "account positions",
            params={"fields": "positions"},
        )
        return mark_of(parse_account_positions(reply.body), str(symbol))

    # -- the rest ----------------------------------------------------------------------

    async def inventory(self) -> Inventory:
        """Stock and ETF positions (signed shares) and cash, for the rebalancer.

        ``GET /trader/v1/accounts/{hash}?fields=positions``. Other asset types
        (options, bonds, money-market funds) and tickers st0x cannot name are
        left out and logged, never silently.
        """
        account = await self.account_hash()
        reply = await self._call(
            "GET", f"/trader/v1/accounts/{account}", "account positions",
            params={"fields": "positions"},
        )
        holdings = parse_account_positions(reply.body)
        skipped = list(holdings.skipped)
        positions: list[Position] = []
        for held in holdings.positions:
            try:
                symbol = Symbol(held.symbol)
            except ValueError:
                skipped.append(held.symbol[:20])
                continue
            positions.append(Position(symbol, held.quantity, held.market_value))
        if skipped:
            log.info("Schwab inventory leaves out: %s", ", ".join(skipped[:20]))
        return Inventory(tuple(positions), holdings.cash, self._now())

    async def maintenance(self) -> None:
        """Refresh the access token ahead of expiry, forever; never raises."""
        while True:
            try:
                await self.tokens.maintain()
                if self._last_auth_problem is not None:
                    log.info("Schwab authorization is valid again; hedging can resume")
                self._last_auth_problem = None
            except AuthenticationRequiredError as exc:
                if str(exc) != self._last_auth_problem:
                    log.error("%s", exc)
                self._last_auth_problem = str(exc)
            except BrokerError as exc:
                log.warning("Schwab token maintenance failed, will retry: %s", exc)
            except Exception:
                log.exception("unexpected error in Schwab token maintenance")
            await self._sleep(self.config.maintenance_interval)


def _with_client_id(update: OrderUpdate, client_order_id: str) -> OrderUpdate:
    return attrs.evolve(update, client_order_id=client_order_id)

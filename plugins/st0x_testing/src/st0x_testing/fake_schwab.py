"""A fake Schwab (OAuth + Trader API + market hours) for tests and demos.

It follows Schwab's documented shapes, for this plugin's executor and for the
official SDK (schwab-py): an authorize redirect that echoes the OAuth
``state``, Basic-auth token endpoint, 30-minute access tokens, refresh tokens
dead 7 days after the original login (refreshing returns the same refresh
token and does not extend it), ``accountNumbers``, order POST answered ``201``
with an empty body and a ``Location`` header on Schwab's host, order objects
with ``orderActivityCollection``/``executionLegs`` and JSON numbers, cancel
(``DELETE``), the time-window order listing per account and across linked
accounts, the accounts with their positions and balances
(``?fields=positions``, moved by fills), equity market hours
(``/markets?markets=equity`` and ``/markets/equity``) with the open-day
(``equity.EQ``) and closed-day (``equity.equity``) shapes, 401 for bad or
expired tokens and 429 over the request budget.

Sessions (the reference's reading of Schwab's enums and retail pages): orders
are ``MARKET`` or ``LIMIT`` with ``session`` ``NORMAL`` (regular hours), ``AM``
(pre-market), ``PM`` (after-hours) or ``SEAMLESS`` (all three) and ``duration``
``DAY``; ``MARKET`` only with ``NORMAL`` (400 otherwise), whole shares, limit
prices on the penny grid (four decimals below $1). There is no overnight
session. An order waits ``QUEUED`` outside its session and works inside it;
``DAY`` ends it ``EXPIRED`` when its session ends on its trade date (``AM``: the
regular open, ``NORMAL``: the close, ``PM``/``SEAMLESS``: the end of after-hours).
Limit orders fill when read, against ``set_price`` (buy at or below the limit,
sell at or above), ``partial_fill`` of the quantity at a time; ``cancel_pending``
makes a cancel pass through ``PENDING_CANCEL``. The time comes from a
:class:`~st0x_testing.session_clock.SessionClock` (``fake.clock``, or ``POST
/_control/clock``); the calendar (``holidays``, ``half_days``) from
:class:`~st0x_testing.market_calendar.FakeCalendar` with pre-market from 07:00.

Everything is inspectable (``orders``, ``requests``, ``token_grants``) and
faults can be injected per route with :meth:`FakeSchwab.inject`.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import attrs
from aiohttp import web

from .market_calendar import FakeCalendar, FakeDay
from .session_clock import ClockAndCalendar, SessionClock, control_clock

EASTERN = ZoneInfo("America/New_York")
ACCESS_LIFETIME = timedelta(minutes=30)
REFRESH_LIFETIME = timedelta(days=7)
CODE_LIFETIME = timedelta(seconds=30)

ENDED = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED", "REPLACED"})
ORDER_SESSIONS: dict[str, frozenset[str]] = {
    "NORMAL": frozenset({"regular"}),
    "AM": frozenset({"pre"}),
    "PM": frozenset({"post"}),
    "SEAMLESS": frozenset({"pre", "regular", "post"}),
}
"""Schwab's order ``session`` -> the calendar sessions it trades in."""
MARKETS = frozenset({"equity", "option", "bond", "future", "forex"})

FaultKind = Literal["status", "disconnect_before", "disconnect_after", "garbage", "delay", "no_location"]
Route = Literal[
    "token", "accounts", "place_order", "get_order", "list_orders", "market_hours", "authorize",
    "account", "cancel_order",
]


@attrs.define
class Fault:
    kind: FaultKind
    status: int = 500
    body: Any = None
    seconds: float = 0.0
    headers: dict[str, str] = attrs.field(factory=dict)


@attrs.define
class FakeOrder:
    order_id: int
    account_hash: str
    symbol: str
    instruction: str
    quantity: Decimal
    entered: datetime
    status: str = "WORKING"
    close_time: datetime | None = None
    legs: list[tuple[Decimal, Decimal, datetime]] = attrs.field(factory=list)
    status_description: str | None = None
    order_type: str = "MARKET"
    session: str = "NORMAL"
    price: Decimal | None = None
    expires_at: datetime | None = None
    cancel_requested: bool = False

    @property
    def filled(self) -> Decimal:
        return sum((q for q, _p, _t in self.legs), Decimal(0))


def _limit_price(raw: Any) -> Decimal | None:
    """A positive price on the grid (2 decimals at or above $1, 4 below), else None.
    schwab-py sends it as a string (``"190.25"``); the spec types it a number."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    try:
        price = Decimal(str(raw))
    except InvalidOperation:
        return None
    if not price.is_finite() or price <= 0:
        return None
    tick = Decimal("0.01") if price >= 1 else Decimal("0.0001")
    return price if price == price.quantize(tick, rounding="ROUND_DOWN") else None


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class FakeSchwab(ClockAndCalendar):
    def __init__(
        self,
        *,
        app_key: str = "fake-app-key",
        app_secret: str = "fake-app-secret",
        redirect_uri: str = "https://127.0.0.1",
        accounts: tuple[tuple[str, str], ...] = (("12345678", "3A1B9C0FD2E4A6B8C0D2E4F6A8B0C2D4"),),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rate_limit: int | None = None,
        rate_window: float = 60.0,
        send_retry_after: bool = True,
        holidays: set[date] | None = None,
        always_open: bool = False,
    ) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.redirect_uri = redirect_uri
        self.accounts = list(accounts)
        self.clock = SessionClock(now)
        self.calendar = FakeCalendar(holidays=holidays or set(), session_open=dtime(7, 0))
        self.prices: dict[str, Decimal] = {}
        """Market price per symbol: limit orders fill against it."""
        self.partial_fill = Decimal(1)
        """Share of a limit order's quantity filled per read (whole shares, at least 1)."""
        self.cancel_pending = False
        self.expiry_status = "EXPIRED"
        self._expiring: set[int] = set()
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.send_retry_after = send_retry_after
        self.always_open = always_open
        self.location_root = "https://api.schwabapi.com"
        """Root of the order ``Location`` header: Schwab's own host, as Schwab sends it
        (clients such as schwab-py match it), whatever URL the fake listens on."""
        self.list_window_slack = timedelta(minutes=5)
        """How far past 60 days ago ``fromEnteredTime`` may be: a client computes its
        default window (now - 60 days) a moment before the fake checks it."""
        self.codes: dict[str, datetime] = {}
        self.access_tokens: dict[str, datetime] = {}  # token -> expires at
        self.refresh_tokens: dict[str, datetime] = {}  # token -> original authorization time
        self.revoked: set[str] = set()
        self.orders: dict[int, FakeOrder] = {}
        self.requests: list[tuple[str, str]] = []
        self.token_grants: list[str] = []
        self.faults: dict[str, collections.deque[Fault]] = collections.defaultdict(collections.deque)
        self.fill_prices: dict[str, Decimal] = {}  # symbol -> price: fill at once on placement
        self.reject_symbols: dict[str, str] = {}  # symbol -> rejection reason
        # account hash -> symbol -> (signed shares, assetType); fills move them.
        self.holdings: dict[str, dict[str, tuple[Decimal, str]]] = {
            h: {} for _n, h in self.accounts
        }
        self.cash: dict[str, Decimal] = {h: Decimal("100000") for _n, h in self.accounts}
        self.last_price: dict[str, Decimal] = {}
        self._ids = itertools.count(1004055538153)
        self._recent: collections.deque[float] = collections.deque()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- time, calendar (``now``, ``holidays``, ``half_days``: ClockAndCalendar), prices ---

    def session(self) -> str:
        """regular / pre / post / closed now (Schwab has no overnight session)."""
        if self.always_open:
            return "regular"
        name = self.calendar.session_at(self.now())[0]
        return "closed" if name == "overnight" else name

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        """The market price (limit fills) and the mark positions are valued at."""
        self.prices[symbol] = self.last_price[symbol] = Decimal(price)

    def _session_end(self, day: FakeDay, session: str) -> datetime:
        if session == "AM":
            return day.open
        if session == "NORMAL":
            return day.close
        return day.session_close

    def _expiry(self, session: str) -> datetime | None:
        """End of a ``DAY`` order: its session's end on the first day still ahead."""
        if self.always_open:
            return None
        now = self.now()
        for day in self.calendar.following(now):
            end = self._session_end(day, session)
            if end > now:
                return end
        return None

    def expire_due(self) -> None:
        """End live ``DAY`` orders whose session is over (only those placed with an expiry)."""
        now = self.now()
        for order_id in list(self._expiring):
            order = self.orders[order_id]
            if order.status in ENDED:
                self._expiring.discard(order_id)
            elif order.expires_at is not None and now >= order.expires_at:
                order.status = self.expiry_status
                order.close_time = order.expires_at
                self._expiring.discard(order_id)

    def in_session(self, order: FakeOrder) -> bool:
        return self.session() in ORDER_SESSIONS.get(order.session, frozenset())

    def evaluate(self, order: FakeOrder) -> None:
        """What a read finds: a pending cancel done, a queued order working, a
        limit order filled (``partial_fill`` at a time) once its price is reached,
        a queued market order filled at ``fill_prices`` once the session is open."""
        if order.status == "PENDING_CANCEL" and order.cancel_requested:
            self.finish(order.order_id, "CANCELED")
            return
        if order.status not in ("QUEUED", "WORKING") or not self.in_session(order):
            return
        order.status = "WORKING"
        if order.order_type == "MARKET":
            if order.symbol in self.fill_prices:
                self.fill(order.order_id, self.fill_prices[order.symbol])
            return
        price = self.prices.get(order.symbol)
        if price is None or order.price is None:
            return
        crosses = price <= order.price if order.instruction.startswith("BUY") else price >= order.price
        if not crosses:
            return
        remaining = order.quantity - order.filled
        step = max(Decimal(1), (order.quantity * self.partial_fill).to_integral_value("ROUND_DOWN"))
        self.fill(order.order_id, price, min(remaining, step))

    # -- control -------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (port 0: any free port); return the base URL."""
        app = web.Application()
        app.add_routes(
            [
                web.get("/v1/oauth/authorize", self._authorize),
                web.post("/v1/oauth/token", self._token),
                web.get("/trader/v1/accounts/accountNumbers", self._account_numbers),
                web.get("/trader/v1/accounts", self._accounts),
                web.get("/trader/v1/accounts/{hash}", self._account_details),
                web.post("/trader/v1/accounts/{hash}/orders", self._place),
                web.get("/trader/v1/accounts/{hash}/orders", self._list),
                web.get("/trader/v1/orders", self._list),
                web.get("/trader/v1/accounts/{hash}/orders/{order_id}", self._get_order),
                web.delete("/trader/v1/accounts/{hash}/orders/{order_id}", self._cancel),
                web.get("/marketdata/v1/markets", self._markets),
                web.get("/marketdata/v1/markets/{market}", self._market_hours),
                web.post("/_control/clock", control_clock(self.clock)),
                web.post("/_control/price", self._control_price),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _control_price(self, request: web.Request) -> web.Response:
        """``POST /_control/price {"symbol", "price"}`` (tests with the bot in a child process)."""
        try:
            body = await request.json()
            self.set_price(str(body["symbol"]), Decimal(str(body["price"])))
        except (ValueError, KeyError, TypeError, InvalidOperation):
            return self._error(400, 'expected {"symbol": "AAPL", "price": "190.25"}')
        return web.json_response({"symbol": body["symbol"], "price": str(self.prices[body["symbol"]])})

    def inject(self, route: Route, fault: Fault, times: int = 1) -> None:
        """Make the next ``times`` requests to ``route`` misbehave."""
        for _ in range(times):
            self.faults[route].append(fault)

    def expire_access_tokens(self) -> None:
        for token in self.access_tokens:
            self.access_tokens[token] = self.now() - timedelta(seconds=1)

    def revoke_refresh_tokens(self) -> None:
        self.revoked.update(self.refresh_tokens)

    def issue_code(self) -> str:
        code = "C0." + secrets.token_urlsafe(24) + "@"
        self.codes[code] = self.now()
        return code

    def add_order(
        self,
        symbol: str,
        instruction: str,
        quantity: int,
        entered: datetime | None = None,
        account_hash: str | None = None,
    ) -> FakeOrder:
        """An order placed some other way (by hand in Schwab's web site, say)."""
        order = FakeOrder(
            next(self._ids),
            account_hash or self.accounts[0][1],
            symbol,
            instruction,
            Decimal(quantity),
            entered or self.now(),
        )
        self.orders[order.order_id] = order
        return order

    def fill(self, order_id: int, price: Decimal | str, quantity: Decimal | int | None = None) -> None:
        order = self.orders[order_id]
        qty = Decimal(quantity) if quantity is not None else order.quantity - order.filled
        order.legs.append((qty, Decimal(price), self.now()))
        sign = 1 if order.instruction in ("BUY", "BUY_TO_COVER") else -1
        self.set_position(
            order.symbol,
            self.position(order.symbol, order.account_hash) + sign * qty,
            account_hash=order.account_hash,
        )
        self.cash[order.account_hash] = (
            self.cash.get(order.account_hash, Decimal(0)) - sign * qty * Decimal(price)
        )
        self.last_price[order.symbol] = Decimal(price)
        if order.filled >= order.quantity:
            order.status = "FILLED"
            order.close_time = self.now()

    def position(self, symbol: str, account_hash: str | None = None) -> Decimal:
        held = self.holdings.get(account_hash or self.accounts[0][1], {})
        return held.get(symbol, (Decimal(0), "EQUITY"))[0]

    def set_position(
        self,
        symbol: str,
        quantity: Decimal | int | str,
        *,
        asset_type: str | None = None,
        account_hash: str | None = None,
    ) -> None:
        """Hold ``quantity`` (negative: short) of ``symbol``; 0 closes the position."""
        held = self.holdings.setdefault(account_hash or self.accounts[0][1], {})
        kind = asset_type or held.get(symbol, (Decimal(0), "EQUITY"))[1]
        if Decimal(quantity) == 0:
            held.pop(symbol, None)
        else:
            held[symbol] = (Decimal(quantity), kind)

    def finish(self, order_id: int, status: str, description: str | None = None) -> None:
        order = self.orders[order_id]
        order.status = status
        order.status_description = description
        order.close_time = self.now()

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, message: str, errors: list[str] | None = None) -> web.Response:
        return web.json_response(
            {"message": message, "errors": errors or [message]},
            status=status,
            headers={"Schwab-Client-CorrelId": secrets.token_hex(8)},
        )

    async def _fault(self, route: str, request: web.Request) -> tuple[web.StreamResponse | None, Fault | None]:
        queue = self.faults.get(route)
        if not queue:
            return None, None
        fault = queue.popleft()
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return None, None
        if fault.kind == "status":
            body = fault.body if fault.body is not None else {"message": "fault", "errors": []}
            if isinstance(body, bytes):
                return web.Response(body=body, status=fault.status, headers=fault.headers), None
            return web.json_response(body, status=fault.status, headers=fault.headers), None
        if fault.kind == "garbage":
            raw = fault.body if isinstance(fault.body, bytes) else b"<html>oops"
            return web.Response(body=raw, status=fault.status if fault.status < 300 else 200), None
        if fault.kind == "disconnect_before":
            self._drop(request)
            return web.Response(status=500), None
        return None, fault  # disconnect_after / no_location: handled after the work

    @staticmethod
    def _drop(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    def _rate_limited(self) -> web.Response | None:
        if self.rate_limit is None:
            return None
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= self.rate_window:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit:
            headers = {"Retry-After": "1"} if self.send_retry_after else {}
            return web.json_response(
                {"message": "Too many requests", "errors": ["rate limit exceeded"]},
                status=429,
                headers=headers,
            )
        self._recent.append(now)
        return None

    def _bearer(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path_qs))
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        expires = self.access_tokens.get(token or "")
        if token is None or expires is None or self.now() >= expires:
            return self._error(401, "Unauthorized", ["access token is missing, invalid or expired"])
        self.expire_due()
        return self._rate_limited()

    def _account(self, request: web.Request) -> web.Response | None:
        if request.match_info["hash"] not in {h for _n, h in self.accounts}:
            return self._error(400, "Invalid account hash", ["account not found for this login"])
        return None

    # -- OAuth ---------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        q = request.query
        if q.get("client_id") != self.app_key:
            return self._error(400, "unknown client_id")
        if q.get("redirect_uri", "").rstrip("/") != self.redirect_uri.rstrip("/"):
            return self._error(400, "redirect_uri does not match the app's callback URL")
        # The real page asks the user to log in and approve; the fake approves at once.
        code = self.issue_code()
        answer = {"code": code, "session": secrets.token_hex(16)}
        if "state" in q:
            answer["state"] = q["state"]  # echoed, as OAuth 2.0 requires (RFC 6749 §4.1.2)
        query = urlencode(answer)  # '@' -> '%40'
        return web.Response(status=302, headers={"Location": f"{q['redirect_uri']}?{query}"})

    def _issue_tokens(self, refresh: str | None = None) -> dict[str, Any]:
        access = "I0." + secrets.token_urlsafe(32) + "@"
        self.access_tokens[access] = self.now() + ACCESS_LIFETIME
        if refresh is None:
            refresh = secrets.token_urlsafe(40) + "@"
            self.refresh_tokens[refresh] = self.now()
        return {
            "expires_in": 1800,
            "token_type": "Bearer",
            "scope": "api",
            "refresh_token": refresh,
            "access_token": access,
            "id_token": "eyJhbGciOiJSUzI1NiJ9.e30.fake",
        }

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        response, _ = await self._fault("token", request)
        if response is not None:
            return response
        expected = "Basic " + base64.b64encode(f"{self.app_key}:{self.app_secret}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Unauthorized"}, status=401
            )
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response({"error": "invalid_request"}, status=400)
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = str(form.get("code", ""))
            issued = self.codes.pop(code, None)
            if issued is None or self.now() - issued > CODE_LIFETIME:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "authorization code is invalid or expired"},
                    status=400,
                )
            if str(form.get("redirect_uri", "")).rstrip("/") != self.redirect_uri.rstrip("/"):
                return web.json_response({"error": "invalid_grant", "error_description": "redirect_uri mismatch"}, status=400)
            self.token_grants.append("authorization_code")
            return web.json_response(self._issue_tokens())
        if grant == "refresh_token":
            token = str(form.get("refresh_token", ""))
            authorized = self.refresh_tokens.get(token)
            if authorized is None or token in self.revoked or self.now() >= authorized + REFRESH_LIFETIME:
                return web.json_response(
                    {
                        "error": "unsupported_token_type",
                        "error_description": "400 Bad Request: \"{\"error_description\":\"Exception while authenticating refresh token [id=…], refresh_token_authentication_error\",\"error\":\"refresh_token_authentication_error\"}\"",
                    },
                    status=400,
                )
            self.token_grants.append("refresh_token")
            return web.json_response(self._issue_tokens(refresh=token))
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    # -- trader API --------------------------------------------------------------------

    async def _account_numbers(self, request: web.Request) -> web.StreamResponse:
        denied = self._bearer(request)
        if denied is not None:
            return denied
        response, _ = await self._fault("accounts", request)
        if response is not None:
            return response
        return web.json_response([{"accountNumber": n, "hashValue": h} for n, h in self.accounts])

    def account_json(self, account_hash: str, with_positions: bool) -> dict[str, Any]:
        """``securitiesAccount`` as Schwab sends it (numbers are JSON numbers)."""
        number = next(n for n, h in self.accounts if h == account_hash)
        positions = []
        long_value = short_value = Decimal(0)
        for symbol, (qty, asset) in sorted(self.holdings.get(account_hash, {}).items()):
            price = self.last_price.get(symbol, Decimal(100))
            value = qty * price
            if qty > 0:
                long_value += value
            else:
                short_value += value
            positions.append(
                {
                    "shortQuantity": float(-qty) if qty < 0 else 0.0,
                    "averagePrice": float(price),
                    "currentDayProfitLoss": 0.0,
                    "currentDayProfitLossPercentage": 0.0,
                    "longQuantity": float(qty) if qty > 0 else 0.0,
                    "settledLongQuantity": float(qty) if qty > 0 else 0.0,
                    "settledShortQuantity": float(-qty) if qty < 0 else 0.0,
                    "instrument": {
                        "assetType": asset,
                        "cusip": "000000000",
                        "symbol": symbol,
                        "netChange": 0.0,
                    },
                    "marketValue": float(value),
                    "maintenanceRequirement": float(abs(value) * Decimal("0.25")),
                    "previousSessionLongQuantity": float(qty) if qty > 0 else 0.0,
                    "currentDayCost": 0.0,
                }
            )
        cash = self.cash.get(account_hash, Decimal(0))
        account: dict[str, Any] = {
            "type": "MARGIN",
            "accountNumber": number,
            "roundTrips": 0,
            "isDayTrader": False,
            "isClosingOnlyRestricted": False,
            "pfcbFlag": False,
            "currentBalances": {
                "accruedInterest": 0.0,
                "cashBalance": float(cash),
                "cashReceipts": 0.0,
                "longMarketValue": float(long_value),
                "shortMarketValue": float(short_value),
                "liquidationValue": float(cash + long_value + short_value),
                "moneyMarketFund": 0.0,
                "savings": 0.0,
                "pendingDeposits": 0.0,
                "availableFunds": float(cash),
                "buyingPower": float(cash * 2),
                "equity": float(cash + long_value + short_value),
                "marginBalance": 0.0,
                "shortBalance": 0.0,
            },
        }
        if with_positions:
            account["positions"] = positions
        return {
            "securitiesAccount": account,
            "aggregatedBalance": {
                "currentLiquidationValue": float(cash + long_value + short_value),
                "liquidationValue": float(cash + long_value + short_value),
            },
        }

    async def _account_details(self, request: web.Request) -> web.StreamResponse:
        denied = self._bearer(request) or self._account(request)
        if denied is not None:
            return denied
        response, _ = await self._fault("account", request)
        if response is not None:
            return response
        fields = request.query.get("fields", "")
        return web.json_response(
            self.account_json(request.match_info["hash"], "positions" in fields.split(","))
        )

    async def _place(self, request: web.Request) -> web.StreamResponse:
        denied = self._bearer(request) or self._account(request)
        if denied is not None:
            return denied
        response, after = await self._fault("place_order", request)
        if response is not None:
            return response
        try:
            body = await request.json()
            legs = body["orderLegCollection"]
            leg = legs[0]
            symbol = leg["instrument"]["symbol"]
            instruction = leg["instruction"]
            quantity = leg["quantity"]
            order_type, session = body.get("orderType"), body.get("session")
            valid = (
                order_type in ("MARKET", "LIMIT")
                and session in ORDER_SESSIONS
                and body.get("duration") == "DAY"
                and body.get("orderStrategyType") == "SINGLE"
                and len(legs) == 1
                and leg["instrument"].get("assetType") == "EQUITY"
                and instruction in ("BUY", "SELL", "SELL_SHORT", "BUY_TO_COVER")
                and isinstance(quantity, int)
                and not isinstance(quantity, bool)
                and quantity > 0
                and isinstance(symbol, str)
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            valid = False
        if not valid:
            return self._error(400, "Order validation failed", ["invalid order request"])
        if order_type == "MARKET" and session != "NORMAL":
            # Extended sessions take limit orders only (Schwab's pages); the API's answer
            # is undocumented, the fake refuses.
            return self._error(
                400, "Order validation failed", ["market orders are for the NORMAL session only"]
            )
        price: Decimal | None = None
        if order_type == "LIMIT":
            price = _limit_price(body.get("price"))
            if price is None:
                return self._error(
                    400, "Order validation failed", ["price must be a positive tick-valid number"]
                )
        order = self.add_order(symbol, instruction, quantity, account_hash=request.match_info["hash"])
        order.order_type, order.session, order.price = order_type, session, price
        order.expires_at = self._expiry(session)
        if order.expires_at is not None:
            self._expiring.add(order.order_id)
        order.status = "WORKING" if self.in_session(order) else "QUEUED"
        if symbol in self.reject_symbols:
            self.finish(order.order_id, "REJECTED", self.reject_symbols[symbol])
        elif order_type == "MARKET" and order.status == "WORKING" and symbol in self.fill_prices:
            self.fill(order.order_id, self.fill_prices[symbol])
        if after is not None and after.kind == "disconnect_after":
            self._drop(request)
            return web.Response(status=500)
        location = (
            f"{self.location_root}/trader/v1/accounts/{request.match_info['hash']}"
            f"/orders/{order.order_id}"
        )
        headers = {} if after is not None and after.kind == "no_location" else {"Location": location}
        return web.Response(status=201, headers=headers)

    def order_json(self, order: FakeOrder) -> dict[str, Any]:
        data: dict[str, Any] = {
            "session": order.session,
            "duration": "DAY",
            "orderType": order.order_type,
            "complexOrderStrategyType": "NONE",
            "quantity": float(order.quantity),
            "filledQuantity": float(order.filled),
            "remainingQuantity": float(order.quantity - order.filled),
            "requestedDestination": "AUTO",
            "destinationLinkName": "HRTF",
            "orderLegCollection": [
                {
                    "orderLegType": "EQUITY",
                    "legId": 1,
                    "instrument": {
                        "assetType": "EQUITY",
                        "cusip": "000000000",
                        "symbol": order.symbol,
                        "instrumentId": 4430271,
                    },
                    "instruction": order.instruction,
                    "positionEffect": "OPENING",
                    "quantity": float(order.quantity),
                }
            ],
            "orderStrategyType": "SINGLE",
            "orderId": order.order_id,
            "cancelable": order.status in ("WORKING", "QUEUED"),
            "editable": False,
            "status": order.status,
            "enteredTime": _time(order.entered),
            "tag": "TA_fakeapp",
            "accountNumber": int(
                next((n for n, h in self.accounts if h == order.account_hash), self.accounts[0][0])
            ),
        }
        if order.price is not None:
            data["price"] = float(order.price)
        if order.close_time is not None:
            data["closeTime"] = _time(order.close_time)
        if order.status_description is not None:
            data["statusDescription"] = order.status_description
        if order.legs:
            activities = []
            remaining = order.quantity
            for i, (qty, price, at) in enumerate(order.legs):
                remaining -= qty
                activities.append(
                    {
                        "activityType": "EXECUTION",
                        "activityId": 102102029816 + i,
                        "executionType": "FILL",
                        "quantity": float(qty),
                        "orderRemainingQuantity": float(remaining),
                        "executionLegs": [
                            {
                                "legId": 1,
                                "quantity": float(qty),
                                "mismarkedQuantity": 0.0,
                                "price": float(price),
                                "time": _time(at),
                                "instrumentId": 4430271,
                            }
                        ],
                    }
                )
            data["orderActivityCollection"] = activities
        return data

    async def _get_order(self, request: web.Request) -> web.StreamResponse:
        denied = self._bearer(request) or self._account(request)
        if denied is not None:
            return denied
        response, _ = await self._fault("get_order", request)
        if response is not None:
            return response
        try:
            order = self.orders[int(request.match_info["order_id"])]
        except (ValueError, KeyError):
            return self._error(404, "Order not found")
        if order.account_hash != request.match_info["hash"]:
            return self._error(404, "Order not found")
        self.evaluate(order)
        return web.json_response(self.order_json(order))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        """One account's orders (``…/accounts/{hash}/orders``) or every linked
        account's (``/trader/v1/orders``), entered within the window."""
        scoped = "hash" in request.match_info
        denied = self._bearer(request) or (self._account(request) if scoped else None)
        if denied is not None:
            return denied
        response, _ = await self._fault("list_orders", request)
        if response is not None:
            return response
        q = request.query
        try:
            start = datetime.fromisoformat(q["fromEnteredTime"])
            end = datetime.fromisoformat(q["toEnteredTime"])
            limit = int(q.get("maxResults", "3000"))
        except (KeyError, ValueError):
            return self._error(
                400, "fromEnteredTime and toEnteredTime are required ISO-8601 times"
            )
        if start.tzinfo is None or end.tzinfo is None:
            return self._error(400, "fromEnteredTime and toEnteredTime need a time zone")
        if start < self.now() - timedelta(days=60) - self.list_window_slack or end < start:
            return self._error(400, "the time window must be within the last 60 days")
        status = q.get("status")
        found = [
            self.order_json(o)
            for o in sorted(self.orders.values(), key=lambda o: o.entered, reverse=True)
            if (not scoped or o.account_hash == request.match_info["hash"])
            and start <= o.entered.replace(microsecond=0) <= end  # Schwab's times are to the second
            and (status is None or o.status == status)
        ]
        return web.json_response(found[:limit])

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        """``DELETE …/orders/{id}``: 200 with an empty body; 400 once the order has
        ended (it is no longer cancelable), 404 for an unknown order."""
        denied = self._bearer(request) or self._account(request)
        if denied is not None:
            return denied
        response, _ = await self._fault("cancel_order", request)
        if response is not None:
            return response
        try:
            order = self.orders[int(request.match_info["order_id"])]
        except (ValueError, KeyError):
            return self._error(404, "Order not found")
        if order.account_hash != request.match_info["hash"]:
            return self._error(404, "Order not found")
        self.evaluate(order)  # a fill may beat the cancel
        if order.status in ENDED or order.status == "PENDING_CANCEL":
            return self._error(400, "Order is not cancelable", [f"order status is {order.status}"])
        order.cancel_requested = True
        if self.cancel_pending:
            order.status = "PENDING_CANCEL"
        else:
            self.finish(order.order_id, "CANCELED")
        return web.Response(status=200, headers={"Schwab-Client-CorrelId": secrets.token_hex(8)})

    async def _accounts(self, request: web.Request) -> web.StreamResponse:
        """``GET /trader/v1/accounts[?fields=positions]``: every linked account."""
        denied = self._bearer(request)
        if denied is not None:
            return denied
        response, _ = await self._fault("account", request)
        if response is not None:
            return response
        with_positions = "positions" in request.query.get("fields", "").split(",")
        return web.json_response([self.account_json(h, with_positions) for _n, h in self.accounts])

    # -- market hours ------------------------------------------------------------------

    def market_day(self, day: date) -> dict[str, Any]:
        """One day's equity hours from the calendar (half-days: early regular close,
        after-hours to ``half_day_session_close``)."""
        known = self.calendar.day(day)
        if known is None and not self.always_open:
            return {
                "equity": {
                    "equity": {
                        "date": day.isoformat(),
                        "marketType": "EQUITY",
                        "product": "equity",
                        "isOpen": False,
                    }
                }
            }

        def at(hour: int, minute: int) -> str:
            return datetime(day.year, day.month, day.day, hour, minute, tzinfo=EASTERN).isoformat()

        if self.always_open or known is None:
            midnight = datetime(day.year, day.month, day.day, tzinfo=EASTERN)
            regular = {"start": at(0, 0), "end": (midnight + timedelta(days=1)).isoformat()}
            pre = {"start": at(7, 0), "end": at(9, 30)}
            post = {"start": at(16, 0), "end": at(20, 0)}
        else:
            regular = {"start": known.open.isoformat(), "end": known.close.isoformat()}
            pre = {"start": known.session_open.isoformat(), "end": known.open.isoformat()}
            post = {"start": known.close.isoformat(), "end": known.session_close.isoformat()}
        return {
            "equity": {
                "EQ": {
                    "date": day.isoformat(),
                    "marketType": "EQUITY",
                    "exchange": "NULL",
                    "category": "NULL",
                    "product": "EQ",
                    "productName": "equity",
                    "isOpen": True,
                    "sessionHours": {
                        "preMarket": [pre],
                        "regularMarket": [regular],
                        "postMarket": [post],
                    },
                }
            }
        }

    async def _market_hours(self, request: web.Request) -> web.StreamResponse:
        """``GET /marketdata/v1/markets/{market}[?date=]`` (one market)."""
        return await self._hours(request, [request.match_info["market"]])

    async def _markets(self, request: web.Request) -> web.StreamResponse:
        """``GET /marketdata/v1/markets?markets=equity[,…][&date=]`` (schwab-py's call)."""
        markets = [m for m in request.query.get("markets", "").split(",") if m]
        return await self._hours(request, markets)

    async def _hours(self, request: web.Request, markets: list[str]) -> web.StreamResponse:
        denied = self._bearer(request)
        if denied is not None:
            return denied
        response, _ = await self._fault("market_hours", request)
        if response is not None:
            return response
        if not markets or any(m not in MARKETS for m in markets):
            return self._error(400, "markets must be among " + ", ".join(sorted(MARKETS)))
        if any(m != "equity" for m in markets):
            # A real market Schwab serves, but not one this fake simulates.
            return self._error(400, "this fake serves equity market hours only")
        try:
            day = date.fromisoformat(request.query["date"]) if "date" in request.query else (
                self.now().astimezone(EASTERN).date()
            )
        except ValueError:
            return self._error(400, "date must be YYYY-MM-DD")
        return web.json_response(self.market_day(day))


class TestClock:
    """A clock for tests: frozen at ``start`` (or real time when None), moved by ``advance``."""

    __test__ = False  # not a pytest test class

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start
        self._offset = timedelta(0)

    def now(self) -> datetime:
        base = self._start if self._start is not None else datetime.now(UTC)
        return base + self._offset

    def advance(self, **kwargs: float) -> None:
        self._offset += timedelta(**kwargs)


def main(argv: list[str] | None = None) -> None:
    """``python -m st0x_testing.fake_schwab [--port N] [--fill-price SYMBOL=PRICE ...]`` for demos."""
    import argparse

    parser = argparse.ArgumentParser(description="fake Schwab Trader API for demos and tests")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fill-price", action="append", default=[], metavar="SYMBOL=PRICE")
    parser.add_argument("--always-open", action="store_true", help="market open around the clock")
    args = parser.parse_args(argv)

    async def run() -> None:
        fake = FakeSchwab(always_open=args.always_open)
        for item in args.fill_price:
            symbol, _, price = item.partition("=")
            fake.fill_prices[symbol.strip().upper()] = Decimal(price)
        fake_url = await fake.start(port=args.port)
        print(f"fake Schwab at {fake_url} (app_key={fake.app_key}, app_secret={fake.app_secret})")
        print("Ctrl-C to stop", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()

"""A fake Alpaca server (aiohttp) that follows the documented HTTP API.

Used by the tests, the benchmarks and the demo. It serves real HTTP on
``127.0.0.1`` and keeps its state in plain attributes a test can read and set:

* what this plugin's executors call and what the official SDK (alpaca-py's
  ``TradingClient`` / ``BrokerClient``) calls for trading: account, clock,
  calendar (dates optional), positions and one position, assets, orders by
  quantity or notional, list (with Alpaca's filters), by id, by client order
  id, cancel;
* same paths and methods as Alpaca, JSON field names and types as the real API
  (decimal strings, UUID ids, RFC 3339 times), Alpaca's error shape
  ``{"code": 40010001, "message": "..."}`` with its status codes;
* authentication: :class:`FakeAlpacaTrading` checks the ``APCA-API-KEY-ID`` /
  ``APCA-API-SECRET-KEY`` headers; the Broker API fake (in ``st0x-alpaca-broker``)
  checks HTTP Basic. Bad credentials get 401 ``40110000``;
* order validation (400 for an unreadable body, 422 for a bad field, 403
  ``40310000`` for buying power / short sales), unique ``client_order_id``;
* an order lifecycle that advances one step per read of the order, by default
  ``new → accepted → partially_filled → filled``, only while the market is open;
* a market clock and calendar that can be forced open or closed, or follow
  the fake exchange calendar (:mod:`st0x_testing.market_calendar`: weekdays,
  settable ``holidays`` and ``half_days``, ``session_open`` / ``session_close``
  04:00 / 20:00) read from a movable :class:`~st0x_testing.session_clock.SessionClock`
  (``fake.clock.set(...)`` / ``advance(...)``; ``POST /_control/clock`` over HTTP);
* sessions as Alpaca documents them (pass ``market_open=None``): outside
  regular hours only ``limit`` + ``day`` (or ``gtc``) + ``extended_hours``
  orders trade, in pre-market, after-hours and, for symbols whose asset
  ``attributes`` hold ``overnight_tradable`` (not ``overnight_halted``) on an
  account without ``disable_overnight_trading``, overnight; market +
  ``extended_hours`` and sub-penny limits get Alpaca's 422 ``42210000``; a plain
  market order outside regular hours is accepted and queued (``accepted``) for
  the open; ``day`` orders end at the close of their trade date (20:00 for
  extended ones; an order entered overnight belongs to the next trade date);
  limit orders fill, when read, against ``set_price`` (buy at or below the
  limit, sell at or above), ``partial_fill`` of the quantity at a time;
  ``cancel_pending`` makes a cancel go through ``pending_cancel`` first;
* a sliding-window rate limit (200/min by default) answering 429 with the
  ``X-RateLimit-*`` headers, and injectable faults: 429 with ``Retry-After``,
  500, slow responses, dropped connections, malformed JSON, arbitrary bodies,
  each either before or after the request takes effect.

:class:`FakeAlpacaBase` is shared by both fakes; subclasses supply the path
prefix and the authentication check.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from aiohttp import web

from .market_calendar import FakeCalendar
from .session_clock import ClockAndCalendar, SessionClock, control_clock

NEW_YORK = ZoneInfo("America/New_York")

Step = tuple[str, Decimal]
"""(status, cumulative fraction of the quantity filled once in that status)."""

DEFAULT_SCRIPT: tuple[Step, ...] = (
    ("new", Decimal(0)),
    ("accepted", Decimal(0)),
    ("partially_filled", Decimal("0.5")),
    ("filled", Decimal(1)),
)
FILL_AT_ONCE: tuple[Step, ...] = (("accepted", Decimal(0)), ("filled", Decimal(1)))
PARTIAL_THEN_CANCELED: tuple[Step, ...] = (
    ("accepted", Decimal(0)),
    ("partially_filled", Decimal("0.4")),
    ("canceled", Decimal("0.4")),
)
EXPIRES: tuple[Step, ...] = (("accepted", Decimal(0)), ("expired", Decimal(0)))
REJECTED: tuple[Step, ...] = (("pending_new", Decimal(0)), ("rejected", Decimal(0)))

TERMINAL = {"filled", "canceled", "expired", "rejected", "done_for_day", "replaced", "calculated"}

FAULT_KINDS = {
    "429",
    "500",
    "503",
    "slow",
    "slow_after",
    "drop",
    "drop_after",
    "malformed",
    "malformed_after",
    "raw",
}


def rfc3339(moment: datetime) -> str:
    """``2021-03-16T18:38:01.942282Z`` (Alpaca's order timestamps)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_ny(moment: datetime, nanos: bool = True) -> str:
    """``2022-05-16T16:32:24.143735880-04:00`` (Alpaca's clock, New York offset)."""
    local = moment.astimezone(NEW_YORK)
    offset = local.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}"
    if not nanos:
        return local.strftime("%Y-%m-%dT%H:%M:%S") + offset
    return f"{local.strftime('%Y-%m-%dT%H:%M:%S')}.{local.microsecond:06d}123{offset}"


def _s(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@attrs.define
class Fault:
    """One injected misbehaviour, applied to the next ``times`` matching requests."""

    kind: str
    method: str | None = None
    path_contains: str | None = None
    times: int = 1
    delay: float = 0.0
    retry_after: str | None = "1"
    status: int = 200
    body: bytes = b""

    def __attrs_post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    def matches(self, request: web.Request) -> bool:
        if self.method is not None and request.method != self.method.upper():
            return False
        return self.path_contains is None or self.path_contains in request.path


@attrs.define
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    time_in_force: str
    script: tuple[Step, ...]
    price: Decimal
    created_at: datetime
    step: int = 0
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    reads: int = 0
    notional: Decimal | None = None
    """Set for a notional order: ``qty`` is then the share quantity it buys."""
    order_type: str = "market"
    limit_price: Decimal | None = None
    extended_hours: bool = False
    session: str = "regular"
    """The session when the order was placed (the order log a test asserts on)."""
    expires_at: datetime | None = None
    """End of its trade date (regular close, or ``session_close`` when extended)."""
    filled_notional: Decimal = Decimal(0)
    """Sum of fill quantity times fill price (a limit order fills at several prices)."""
    cancel_requested: bool = False

    @property
    def average_price(self) -> Decimal:
        if self.order_type == "limit" and self.filled_qty > 0:
            return self.filled_notional / self.filled_qty
        return self.price

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at or self.created_at),
            "submitted_at": rfc3339(self.created_at),
            "filled_at": None if self.filled_at is None else rfc3339(self.filled_at),
            "expired_at": None if self.expired_at is None else rfc3339(self.expired_at),
            "canceled_at": None if self.canceled_at is None else rfc3339(self.canceled_at),
            "failed_at": None if self.failed_at is None else rfc3339(self.failed_at),
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.symbol)),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": _s(self.notional),
            "qty": None if self.notional is not None else _s(self.qty),
            "filled_qty": _s(self.filled_qty),
            "filled_avg_price": _s(self.average_price) if self.filled_qty > 0 else None,
            "order_class": "",
            "order_type": self.order_type,
            "type": self.order_type,
            "side": self.side,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
            "time_in_force": self.time_in_force,
            "limit_price": _s(self.limit_price),
            "stop_price": None,
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": None if self.expires_at is None else rfc3339(self.expires_at),
        }


CALENDAR_FIRST = "1970-01-01"
CALENDAR_LAST = "2029-12-31"


def _hhmm(moment: datetime) -> str:
    """``0400``: the calendar's ``session_open`` / ``session_close`` format."""
    return moment.astimezone(NEW_YORK).strftime("%H%M")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _parse_time(text: str) -> datetime | None:
    """An RFC 3339 time or a date (``after`` / ``until``); naive means UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _order_amount(body: dict[str, Any], field: str) -> Decimal | web.Response:
    """An order's ``qty`` or ``notional``: a positive decimal (string or number), ≤ 9 places."""
    raw = body.get(field)
    if raw is None:
        return _error(422, 40010001, "qty or notional is required")
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        return _error(422, 40010001, f"invalid {field}")
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        return _error(422, 40010001, f"invalid {field}")
    if not amount.is_finite() or amount <= 0:
        return _error(422, 40010001, f"{field} must be > 0")
    if amount.as_tuple().exponent < -9:  # type: ignore[operator]
        return _error(422, 40010001, f"{field} must have at most 9 decimal places")
    return amount


def _order_kind(body: dict[str, Any]) -> tuple[str, str, bool, Decimal | None] | web.Response:
    """(type, time_in_force, extended_hours, limit_price) of an order body, by
    Alpaca's rules: ``extended_hours`` only with ``limit`` + ``day``/``gtc``."""
    order_type = body.get("type", body.get("order_type"))
    if order_type not in ("market", "limit"):
        return _error(422, 40010001, "invalid order type for this fake (market or limit)")
    tif = body.get("time_in_force")
    if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
        return _error(422, 40010001, "invalid time_in_force")
    extended = body.get("extended_hours", False)
    if not isinstance(extended, bool):
        return _error(422, 40010001, "extended_hours must be a boolean")
    if extended and (order_type != "limit" or tif not in ("day", "gtc")):
        return _error(422, 42210000, "extended hours order must be DAY or GTC limit orders")
    if order_type == "market":
        return order_type, tif, extended, None
    price = _limit_price(body.get("limit_price"))
    if isinstance(price, web.Response):
        return price
    return order_type, tif, extended, price


def _limit_price(raw: Any) -> Decimal | web.Response:
    """A limit price: positive, on Alpaca's grid (2 decimals at or above $1, 4 below)."""
    if raw is None:
        return _error(422, 40010001, "limit_price is required for limit orders")
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        return _error(422, 40010001, "invalid limit_price")
    try:
        price = Decimal(str(raw))
    except InvalidOperation:
        return _error(422, 40010001, "invalid limit_price")
    if not price.is_finite() or price <= 0:
        return _error(422, 40010001, "limit_price must be > 0")
    tick = Decimal("0.01") if price >= 1 else Decimal("0.0001")
    if price != price.quantize(tick, rounding="ROUND_DOWN"):
        return _error(
            422,
            42210000,
            f"invalid limit_price {_s(price)}. sub-penny increment does not fulfill "
            "minimum pricing criteria",
        )
    return price


def _error(status: int, code: int | None, message: str, **extra: str) -> web.Response:
    body: dict[str, Any] = dict(extra)
    if code is not None:
        body["code"] = code
    body["message"] = message
    return web.json_response(body, status=status)


class FakeAlpacaBase(ClockAndCalendar):
    """State, lifecycle, faults and rate limit shared by the two Alpaca fakes."""

    api_name = "alpaca"

    def __init__(
        self,
        *,
        rate_limit: int = 200,
        rate_window: float = 60.0,
        market_open: bool | None = True,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.market_open = market_open
        """True/False forces the clock (always regular / always closed); None follows
        the calendar and its sessions."""
        self.clock = SessionClock(now)
        self.calendar = FakeCalendar()
        self.asset_attributes: dict[str, list[str]] = {}
        """Per symbol; others get ``default_attributes``."""
        self.default_attributes = ["fractional_eh_enabled", "has_options", "overnight_tradable"]
        self.disable_overnight_trading = False
        self.partial_fill = Decimal(1)
        """Share of a limit order's quantity filled per read once its price is reached."""
        self.cancel_pending = False
        """A cancel leaves the order ``pending_cancel``; the next read finds it ``canceled``."""
        self.expiry_status = "expired"
        """Status of a ``day`` order at the end of its trade date (or ``done_for_day``)."""
        self.calendar_session_fields = True
        """False: the calendar leaves out ``session_open`` / ``session_close``."""
        self._expiring: dict[str, datetime] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.by_client_order_id: dict[str, str] = {}
        self.positions: dict[str, Decimal] = {}
        self.cash = Decimal("100000")
        self.prices: dict[str, Decimal] = {}
        self.default_price = Decimal("100")
        self.scripts: dict[str, tuple[Step, ...]] = {}
        self.default_script: tuple[Step, ...] = DEFAULT_SCRIPT
        self.non_fractionable: set[str] = set()
        self.unknown_symbols: set[str] = set()
        self.allow_short = True
        self.account_status = "ACTIVE"
        self.trading_blocked = False
        self.auth_failure_status = 401
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, float]] = []
        """(method, path with query, monotonic time) of every request received."""
        self.order_posts = 0
        self.cancel_requests = 0
        self.order_bodies: list[dict[str, Any]] = []
        """POSTs to the orders endpoint that reached order validation."""
        self.rate_limited = 0
        self._window: collections.deque[float] = collections.deque()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application(middlewares=[self._middleware])
        self._add_routes(self.app)
        self._add_control_routes(self.app)

    # -- time and calendar (``now``, ``holidays``, ``half_days``: ClockAndCalendar) ------

    def session(self) -> str:
        """The session now: regular / pre / post / overnight / closed (forced clocks:
        regular or closed)."""
        if self.market_open is not None:
            return "regular" if self.market_open else "closed"
        return self.calendar.session_at(self.now())[0]

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        """The market price: market orders fill at it, limit orders when it crosses."""
        self.prices[symbol] = Decimal(price)

    def set_eligibility(
        self,
        symbol: str,
        *,
        fractional_eh: bool = True,
        overnight: bool = True,
        halted: bool = False,
    ) -> None:
        """The asset ``attributes`` Alpaca reports for ``symbol``."""
        attributes = ["has_options"]
        if fractional_eh:
            attributes.append("fractional_eh_enabled")
        if overnight:
            attributes.append("overnight_tradable")
        if halted:
            attributes.append("overnight_halted")
        self.asset_attributes[symbol] = attributes

    def attributes(self, symbol: str) -> list[str]:
        return list(self.asset_attributes.get(symbol, self.default_attributes))

    def overnight_ok(self, symbol: str) -> bool:
        attributes = self.attributes(symbol)
        return (
            not self.disable_overnight_trading
            and "overnight_tradable" in attributes
            and "overnight_halted" not in attributes
        )

    def market_orders_outside_regular(self) -> list[FakeOrder]:
        """Market orders placed when the session was not regular (queued by Alpaca:
        never a hedge; the engine must not send one)."""
        return [
            o for o in self.orders.values() if o.order_type == "market" and o.session != "regular"
        ]

    # -- lifecycle --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> FakeAlpacaBase:
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            handler_cancellation=True,  # a client that hangs up cancels a slow fault
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAlpacaBase:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # -- test controls -----------------------------------------------------------

    def inject(self, kind: str, **kwargs: Any) -> Fault:
        fault = Fault(kind, **kwargs)
        self.faults.append(fault)
        return fault

    def order_by_client_id(self, client_order_id: str) -> FakeOrder | None:
        order_id = self.by_client_order_id.get(client_order_id)
        return None if order_id is None else self.orders[order_id]

    def is_open(self) -> bool:
        """Regular hours (what ``/v2/clock`` calls open)."""
        return self.session() == "regular"

    def trading_days(self, start: date, days: int) -> list[tuple[date, datetime, datetime]]:
        """(date, open, close) of the trading days in ``[start, start + days)``."""
        result = []
        today = self.now().astimezone(NEW_YORK).date()
        for offset in range(days):
            day = start + timedelta(days=offset)
            if self.market_open is True and day == today:
                now = self.now().astimezone(NEW_YORK)
                opens = max(datetime.combine(day, dtime(0, 0), NEW_YORK), now - timedelta(hours=1))
                closes = datetime.combine(day, dtime(23, 59), NEW_YORK)
                result.append((day, opens.replace(second=0, microsecond=0), closes))
                continue
            if self.market_open is False and day == today:
                continue
            found = self.calendar.day(day)
            if found is not None:
                result.append((day, found.open, found.close))
        return result

    # -- plumbing ----------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _add_control_routes(self, app: web.Application) -> None:
        """Test controls for a fake the test does not share a process with:
        ``/_control/clock`` (``{"now": iso}`` / ``{"advance": s}``, optional
        ``"market_open": true|false|null``), ``/_control/price``
        (``{"symbol", "price"}``) and ``/_control/asset`` (``{"symbol",
        "attributes": [...]}``). Never authenticated; the fake is local only."""
        app.router.add_post("/_control/clock", control_clock(self.clock, self._clock_extra))
        app.router.add_post("/_control/price", self._control_price)
        app.router.add_post("/_control/asset", self._control_asset)

    def _clock_extra(self, body: dict[str, Any]) -> None:
        if "market_open" in body and body["market_open"] in (True, False, None):
            self.market_open = body["market_open"]

    async def _control_price(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            self.set_price(str(body["symbol"]), Decimal(str(body["price"])))
        except (ValueError, KeyError, TypeError, InvalidOperation, UnicodeDecodeError):
            return _error(400, None, 'expected {"symbol": "AAPL", "price": "190.25"}')
        return web.json_response({"symbol": body["symbol"], "price": _s(self.prices[body["symbol"]])})

    async def _control_asset(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            symbol, attributes = str(body["symbol"]), body["attributes"]
            if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
                raise TypeError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return _error(400, None, 'expected {"symbol": "AAPL", "attributes": ["..."]}')
        self.asset_attributes[symbol] = list(attributes)
        return web.json_response({"symbol": symbol, "attributes": attributes})

    def account_configurations(self) -> dict[str, Any]:
        """``GET …/account/configurations`` (the 2026 shape, with the overnight switch)."""
        return {
            "dtbp_check": "entry",
            "trade_confirm_email": "all",
            "suspend_trade": False,
            "no_shorting": not self.allow_short,
            "fractional_trading": True,
            "max_margin_multiplier": "4",
            "max_options_trading_level": 0,
            "pdt_check": "entry",
            "ptp_no_exception_entry": False,
            "disable_overnight_trading": self.disable_overnight_trading,
        }

    async def handle_get_configurations(self, _request: web.Request) -> web.Response:
        return web.json_response(self.account_configurations())

    async def handle_patch_configurations(self, request: web.Request) -> web.Response:
        """``PATCH …/account/configurations``: ``disable_overnight_trading`` and
        ``no_shorting`` take effect; other known keys are accepted and echoed."""
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return _error(400, 40010000, "request body format is invalid")
        if not isinstance(body, dict):
            return _error(400, 40010000, "request body format is invalid")
        known = self.account_configurations()
        for key, value in body.items():
            if key not in known:
                return _error(422, 40010001, f"unknown configuration {key[:40]}")
            if key in ("disable_overnight_trading", "no_shorting") and not isinstance(value, bool):
                return _error(422, 40010001, f"{key} must be true or false")
        if "disable_overnight_trading" in body:
            self.disable_overnight_trading = body["disable_overnight_trading"]
        if "no_shorting" in body:
            self.allow_short = not body["no_shorting"]
        return web.json_response(self.account_configurations())

    def authenticate(self, request: web.Request) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _auth_error(self) -> web.Response:
        if self.auth_failure_status == 403:
            return web.json_response({"message": "forbidden."}, status=403)
        return _error(401, 40110000, "request is not authorized")

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        reset = time.time() + (
            self.rate_window - (time.monotonic() - self._window[0]) if self._window else 0
        )
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.matches(request):
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        stamp = time.monotonic()
        if request.path.startswith("/_control/"):
            return await handler(request)
        self.requests.append((request.method, request.path_qs, stamp))
        if not self.authenticate(request):
            return self._auth_error()
        self.expire_due()
        while self._window and self._window[0] <= stamp - self.rate_window:
            self._window.popleft()
        if len(self._window) >= self.rate_limit:
            self.rate_limited += 1
            return web.json_response(
                {"code": 42910000, "message": "rate limit exceeded"},
                status=429,
                headers=self._rate_headers(0),
            )
        self._window.append(stamp)
        headers = self._rate_headers(self.rate_limit - len(self._window))
        fault = self._take_fault(request)
        if fault is not None:
            early = await self._fault_before(fault, request)
            if early is not None:
                return early
        response = await handler(request)
        if fault is not None:
            late = await self._fault_after(fault, request)
            if late is not None:
                return late
        for key, value in headers.items():
            response.headers.setdefault(key, value)
        return response

    async def _fault_before(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "429":
            extra = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            return web.json_response(
                {"code": 42910000, "message": "rate limit exceeded"}, status=429, headers=extra
            )
        if fault.kind in ("500", "503"):
            return _error(int(fault.kind), 50010000, "internal server error occurred")
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "drop":
            return await self._drop(request)
        if fault.kind == "malformed":
            return web.Response(status=200, body=b'{"id": "', content_type="application/json")
        if fault.kind == "raw":
            return web.Response(status=fault.status, body=fault.body, content_type="application/json")
        return None

    async def _fault_after(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "slow_after":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "drop_after":
            return await self._drop(request)
        if fault.kind == "malformed_after":
            return web.Response(status=200, body=b"<html>oops", content_type="application/json")
        return None

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError

    # -- handlers shared by both APIs --------------------------------------------

    def price(self, symbol: str) -> Decimal:
        return self.prices.get(symbol, self.default_price)

    def account_json(self) -> dict[str, Any]:
        values = [q * self.price(s) for s, q in self.positions.items()]
        long_value = sum((v for v in values if v > 0), Decimal(0))
        short_value = sum((v for v in values if v < 0), Decimal(0))
        equity = self.cash + long_value + short_value
        return {
            "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98",
            "account_number": "010203ABCD",
            "status": self.account_status,
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "cash": _s(self.cash),
            "buying_power": _s(max(self.cash, Decimal(0))),
            "regt_buying_power": _s(max(self.cash, Decimal(0))),
            "equity": _s(equity),
            "portfolio_value": _s(equity),
            "last_equity": _s(equity),
            "long_market_value": _s(long_value),
            "short_market_value": _s(short_value),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "non_marginable_buying_power": _s(max(self.cash, Decimal(0))),
            "trade_suspended_by_user": False,
            "trading_blocked": self.trading_blocked,
            "transfers_blocked": False,
            "account_blocked": False,
            "pattern_day_trader": False,
            "shorting_enabled": self.allow_short,
            "multiplier": "1",
            "daytrade_count": 0,
            "created_at": "2022-04-14T15:51:14.523349Z",
        }

    async def handle_account(self, _request: web.Request) -> web.Response:
        return web.json_response(self.account_json())

    async def handle_positions(self, _request: web.Request) -> web.Response:
        return web.json_response(self.positions_json())

    def positions_json(self) -> list[dict[str, Any]]:
        """The positions list (subclasses append other asset classes)."""
        rows = []
        for symbol, qty in sorted(self.positions.items()):
            if qty == 0:
                continue
            price = self.price(symbol)
            rows.append(
                {
                    "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)),
                    "symbol": symbol,
                    "exchange": "NASDAQ",
                    "asset_class": "us_equity",
                    "asset_marginable": True,
                    "avg_entry_price": _s(price),
                    "qty": _s(qty),
                    "qty_available": _s(qty),
                    "side": "long" if qty > 0 else "short",
                    "market_value": _s(qty * price),
                    "cost_basis": _s(qty * price),
                    "unrealized_pl": "0",
                    "unrealized_plpc": "0",
                    "unrealized_intraday_pl": "0",
                    "unrealized_intraday_plpc": "0",
                    "current_price": _s(price),
                    "lastday_price": _s(price),
                    "change_today": "0",
                }
            )
        return rows

    async def handle_post_order(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read(), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            return _error(400, 40010000, "request body format is invalid")
        if not isinstance(body, dict):
            return _error(400, 40010000, "request body format is invalid")
        self.order_posts += 1
        self.order_bodies.append(body)
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            return _error(422, 40010001, "symbol is required")
        if symbol in self.unknown_symbols:
            return _error(422, 40010001, f'asset "{symbol}" not found')
        side = body.get("side")
        if side not in ("buy", "sell"):
            return _error(422, 40010001, "invalid side")
        kind = _order_kind(body)
        if isinstance(kind, web.Response):
            return kind
        order_type, tif, extended, limit_price = kind
        if body.get("notional") is not None and body.get("qty") is not None:
            return _error(422, 40010001, "qty and notional are mutually exclusive")
        is_notional = body.get("notional") is not None
        if is_notional and order_type == "limit":
            return _error(422, 40010001, "notional orders must be market orders in this fake")
        amount = _order_amount(body, "notional" if is_notional else "qty")
        if isinstance(amount, web.Response):
            return amount
        price = self.price(symbol)
        notional: Decimal | None = None
        if is_notional:
            notional = amount
            qty = (amount / price).quantize(Decimal("1e-9"), rounding="ROUND_DOWN")
            fractional = True
        else:
            qty = amount
            fractional = qty != qty.to_integral_value()
        if fractional and tif != "day":
            return _error(422, 40010001, "fractional orders must be DAY orders")
        if fractional and symbol in self.non_fractionable:
            return _error(422, 40010001, f"requested asset {symbol} is not fractionable")
        session = self.session()
        if (
            fractional
            and extended
            and session not in ("regular", "closed")
            and "fractional_eh_enabled" not in self.attributes(symbol)
        ):
            # The fake's wording: Alpaca documents the attribute, not the error text.
            return _error(
                422, 40010001, f"fractional orders for {symbol} are not accepted in extended hours"
            )
        cid = self._new_client_order_id(body)
        if isinstance(cid, web.Response):
            return cid
        cost = notional if notional is not None else qty * (limit_price or price)
        if fractional and cost < 1:
            return _error(403, 40310000, "cost basis must be >= 1")
        if side == "buy" and cost > self.cash:
            return _error(
                403,
                40310000,
                "insufficient buying power",
                buying_power=_s(self.cash) or "0",
                cost_basis=_s(cost) or "0",
            )
        held = self.positions.get(symbol, Decimal(0))
        if side == "sell" and qty > held and not self.allow_short:
            return _error(
                403,
                40310000,
                f"insufficient qty available for order (requested: {_s(qty)}, "
                f"available: {_s(max(held, Decimal(0)))})",
            )
        now = self.now()
        order = FakeOrder(
            id=str(uuid.uuid4()),
            client_order_id=cid,
            symbol=symbol,
            side=side,
            qty=qty,
            time_in_force=tif,
            script=self.scripts.get(symbol, self.default_script),
            price=price,
            created_at=now,
            notional=notional,
            order_type=order_type,
            limit_price=limit_price,
            extended_hours=extended,
            session=session,
            expires_at=self._expiry(now, tif, extended),
        )
        self._register(order)
        return web.json_response(order.to_json())

    def _register(self, order: FakeOrder) -> None:
        """A new order's first status (``accepted`` when it cannot trade yet: queued,
        as Alpaca does) and its place in the books."""
        if order.order_type == "limit":
            order.status = "new" if self.tradable(order) else "accepted"
            order.updated_at = order.created_at
        else:
            self._apply_step(order, 0)
            if order.session != "regular" and order.status == "new":
                order.status = "accepted"
        self.orders[order.id] = order
        self.by_client_order_id[order.client_order_id] = order.id
        if order.expires_at is not None:
            self._expiring[order.id] = order.expires_at

    def _new_client_order_id(self, body: dict[str, Any]) -> str | web.Response:
        cid = body.get("client_order_id")
        if cid is None:
            return str(uuid.uuid4())
        if not isinstance(cid, str) or not cid:
            return _error(422, 40010001, "invalid client_order_id")
        if len(cid) > 48:
            return _error(422, 40010001, "client_order_id must be no more than 48 characters")
        if cid in self.by_client_order_id:
            return _error(422, 40010001, "client_order_id must be unique")
        return cid

    def _expiry(self, now: datetime, tif: str, extended: bool) -> datetime | None:
        """A ``day`` order ends with its trade date (only when the calendar decides)."""
        if tif != "day" or self.market_open is not None:
            return None
        day = self.calendar.trade_date(now, extended=extended)
        if day is None:
            return None
        return day.session_close if extended else day.close

    def tradable(self, order: FakeOrder) -> bool:
        """Can ``order`` execute in the session now?"""
        session = self.session()
        if session == "regular":
            return True
        if session in ("pre", "post"):
            return order.extended_hours
        if session == "overnight":
            return order.extended_hours and self.overnight_ok(order.symbol)
        return False

    def expire_due(self) -> None:
        """End every live ``day`` order whose trade date is over (only orders placed
        with an expiry are looked at, so a long benchmark run stays linear)."""
        if not self._expiring:
            return
        now = self.now()
        for order_id in list(self._expiring):
            order = self.orders[order_id]
            if order.status in TERMINAL:
                del self._expiring[order_id]
            elif order.expires_at is not None and now >= order.expires_at:
                order.status = self.expiry_status
                order.expired_at = order.updated_at = order.expires_at
                del self._expiring[order_id]

    def _fill_limit(self, order: FakeOrder) -> None:
        """Fill a live limit order (``partial_fill`` of its quantity) if the price allows."""
        if order.status in TERMINAL or order.status == "pending_cancel":
            return
        if not self.tradable(order):
            return
        if order.status == "accepted":
            order.status = "new"
        assert order.limit_price is not None
        price = self.price(order.symbol)
        crosses = price <= order.limit_price if order.side == "buy" else price >= order.limit_price
        if not crosses:
            return
        step = (order.qty * self.partial_fill).quantize(Decimal("1e-9"), rounding="ROUND_DOWN")
        delta = min(order.qty - order.filled_qty, max(step, Decimal("1e-9")))
        now = self.now()
        sign = 1 if order.side == "buy" else -1
        order.filled_qty += delta
        order.filled_notional += delta * price
        self.positions[order.symbol] = self.positions.get(order.symbol, Decimal(0)) + sign * delta
        self.cash -= sign * delta * price
        order.updated_at = now
        if order.filled_qty >= order.qty:
            order.status = "filled"
            order.filled_at = now
        else:
            order.status = "partially_filled"

    def _apply_step(self, order: FakeOrder, step: int) -> None:
        status, fraction = order.script[step]
        now = self.now()
        if fraction > 0 and not self.is_open():
            return
        order.step = step
        order.status = status
        order.updated_at = now
        target = (order.qty * fraction).quantize(Decimal("1e-9"), rounding="ROUND_DOWN")
        delta = target - order.filled_qty
        if delta > 0:
            sign = 1 if order.side == "buy" else -1
            order.filled_qty = target
            self.positions[order.symbol] = self.positions.get(order.symbol, Decimal(0)) + sign * delta
            self.cash -= sign * delta * order.price
        if status == "filled":
            order.filled_at = now
        elif status == "canceled":
            order.canceled_at = now
        elif status == "expired":
            order.expired_at = now
        elif status == "rejected":
            order.failed_at = now

    def advance(self, order: FakeOrder) -> None:
        """One read moves a market order one step along its script, finishes a
        pending cancel, and fills a limit order whose price is reached."""
        order.reads += 1
        if order.status == "pending_cancel" and order.cancel_requested:
            order.status = "canceled"
            order.canceled_at = order.updated_at = self.now()
            return
        if order.order_type == "limit":
            self._fill_limit(order)
            return
        if order.status in TERMINAL or order.step + 1 >= len(order.script):
            return
        self._apply_step(order, order.step + 1)

    async def handle_get_order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        try:
            uuid.UUID(order_id)
        except ValueError:
            return _error(422, 40010001, "order_id is missing")
        order = self.orders.get(str(uuid.UUID(order_id)))
        if order is None:
            return _error(404, 40410000, "order not found")
        self.advance(order)
        return web.json_response(order.to_json())

    async def handle_get_by_client_id(self, request: web.Request) -> web.Response:
        cid = request.query.get("client_order_id")
        if not cid:
            return _error(422, 40010001, "client_order_id is required")
        order = self.order_by_client_id(cid)
        if order is None:
            return _error(404, 40410000, "order not found")
        self.advance(order)
        return web.json_response(order.to_json())

    async def handle_list_orders(self, request: web.Request) -> web.Response:
        """``GET …/orders``: ``status`` open (default) / closed / all, ``limit`` (50, max
        500), ``after`` / ``until`` (submission time, exclusive), ``direction`` desc
        (default) / asc, ``side``, ``symbols`` (comma-separated); ``nested`` is accepted.
        Listing does not move an order along its script (reading it by id does)."""
        q = request.query
        status = q.get("status", "open")
        if status not in ("open", "closed", "all"):
            return _error(422, 40010001, "invalid status")
        direction = q.get("direction", "desc")
        if direction not in ("asc", "desc"):
            return _error(422, 40010001, "invalid direction")
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            return _error(422, 40010001, "invalid limit")
        if not 0 < limit <= 500:
            return _error(422, 40010001, "limit must be between 1 and 500")
        bounds: dict[str, datetime] = {}
        for name in ("after", "until"):
            if name in q:
                parsed = _parse_time(q[name])
                if parsed is None:
                    return _error(422, 40010001, f"invalid {name}")
                bounds[name] = parsed
        side = q.get("side")
        symbols = {s.strip() for s in q.get("symbols", "").split(",") if s.strip()}
        rows = [
            o
            for o in self.orders.values()
            if (status == "all" or (o.status in TERMINAL) == (status == "closed"))
            and ("after" not in bounds or o.created_at > bounds["after"])
            and ("until" not in bounds or o.created_at < bounds["until"])
            and (side is None or o.side == side)
            and (not symbols or o.symbol in symbols or self._listed_symbol(o) in symbols)
        ]
        rows.sort(key=lambda o: o.created_at, reverse=direction == "desc")
        return web.json_response([o.to_json() for o in rows[:limit]])

    def _listed_symbol(self, order: FakeOrder) -> str:
        """The symbol an order is listed under (crypto orders answer ``USDC/USD``)."""
        return str(order.to_json()["symbol"])

    def cancel_order(self, order: FakeOrder) -> web.Response:
        """Cancel a live order: 204, or 422 ``42210000`` once it has ended (as Alpaca)
        or while a cancel is already pending. A limit order whose price is reached
        fills first (the fill beat the cancel); ``cancel_pending`` leaves the order
        ``pending_cancel`` until it is read again."""
        if order.order_type == "limit":
            self._fill_limit(order)
        if order.status in TERMINAL or order.status == "pending_cancel":
            return _error(422, 42210000, f'order is already in "{order.status}" state')
        order.updated_at = self.now()
        order.cancel_requested = True
        if self.cancel_pending:
            order.status = "pending_cancel"
        else:
            order.status = "canceled"
            order.canceled_at = order.updated_at
        return web.Response(status=204)

    async def handle_cancel_order(self, request: web.Request) -> web.Response:
        """``DELETE …/orders/{order_id}``: 204 accepted, 422 already ended, 404 unknown."""
        self.cancel_requests += 1
        try:
            order = self.orders.get(str(uuid.UUID(request.match_info["order_id"])))
        except ValueError:
            order = None
        if order is None:
            return _error(404, 40410000, "order not found")
        return self.cancel_order(order)

    def asset_id(self, symbol: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, symbol))

    def _symbol_for(self, symbol_or_asset_id: str, symbols: Iterable[str]) -> str:
        """A path's ``{symbol_or_asset_id}``: an asset id is matched against ``symbols``."""
        try:
            wanted = str(uuid.UUID(symbol_or_asset_id))
        except ValueError:
            return symbol_or_asset_id.upper()
        return next((s for s in symbols if self.asset_id(s) == wanted), wanted)

    async def handle_position(self, request: web.Request) -> web.Response:
        """``GET …/positions/{symbol_or_asset_id}``: 404 ``40410000`` when none is held."""
        rows = self.positions_json()
        symbol = self._symbol_for(
            request.match_info["symbol_or_asset_id"], [str(r["symbol"]) for r in rows]
        )
        for row in rows:
            if row["symbol"] == symbol or row["symbol"].replace("/", "") == symbol:
                return web.json_response(row)
        return _error(404, 40410000, "position does not exist")

    def asset_json(self, symbol: str) -> dict[str, Any]:
        return {
            "id": self.asset_id(symbol),
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": symbol,
            "name": f"{symbol} Common Stock",
            "status": "active",
            "tradable": True,
            "marginable": True,
            "maintenance_margin_requirement": 30,
            "margin_requirement_long": "30",
            "margin_requirement_short": "100",
            "shortable": self.allow_short,
            "easy_to_borrow": self.allow_short,
            "fractionable": symbol not in self.non_fractionable,
            "attributes": self.attributes(symbol),
        }

    async def handle_asset(self, request: web.Request) -> web.Response:
        """``GET …/assets/{symbol_or_asset_id}``: every symbol is a tradable US equity
        except ``unknown_symbols`` (404 ``40410000`` "asset not found for …")."""
        known = set(self.positions) | set(self.prices) | {o.symbol for o in self.orders.values()}
        symbol = self._symbol_for(request.match_info["symbol_or_asset_id"], known)
        if symbol in self.unknown_symbols or _is_uuid(symbol):
            return _error(404, 40410000, f"asset not found for {symbol}")
        return web.json_response(self.asset_json(symbol))

    async def handle_clock(self, _request: web.Request) -> web.Response:
        now = self.now()
        local_today = now.astimezone(NEW_YORK).date()
        days = self.trading_days(local_today, 15)
        is_open = self.is_open()
        upcoming = [d for d in days if d[2] > now]
        if is_open and self.market_open is None and upcoming:
            next_close = upcoming[0][2]
            next_open = upcoming[1][1] if len(upcoming) > 1 else now + timedelta(days=1)
        elif is_open:
            next_close = now + timedelta(hours=1)
            next_open = now + timedelta(hours=18)
        else:
            future = [d for d in upcoming if d[1] > now]
            if future:
                next_open, next_close = future[0][1], future[0][2]
            else:
                next_open, next_close = now + timedelta(hours=1), now + timedelta(hours=7)
        return web.json_response(
            {
                "timestamp": rfc3339_ny(now),
                "is_open": is_open,
                "next_open": rfc3339_ny(next_open, nanos=False),
                "next_close": rfc3339_ny(next_close, nanos=False),
            }
        )

    async def handle_calendar(self, request: web.Request) -> web.Response:
        """``GET …/calendar``; without ``start`` / ``end`` the whole calendar Alpaca
        serves (1970-01-01 … 2029-12-31)."""
        try:
            start = date.fromisoformat(request.query.get("start") or CALENDAR_FIRST)
            end = date.fromisoformat(request.query.get("end") or CALENDAR_LAST)
        except ValueError:
            return _error(422, 40010001, "start and end must be YYYY-MM-DD")
        rows = []
        for day, opens, closes in self.trading_days(start, (end - start).days + 1):
            row = {
                "date": day.isoformat(),
                "open": opens.astimezone(NEW_YORK).strftime("%H:%M"),
                "close": closes.astimezone(NEW_YORK).strftime("%H:%M"),
                "settlement_date": (day + timedelta(days=1)).isoformat(),
            }
            if self.calendar_session_fields:
                known = self.calendar.day(day)
                row["session_open"] = "0400" if known is None else _hhmm(known.session_open)
                row["session_close"] = "2000" if known is None else _hhmm(known.session_close)
            rows.append(row)
        return web.json_response(rows)


class FakeAlpacaTrading(FakeAlpacaBase):
    """The Trading API v2 (``/v2/...``) with ``APCA-API-*`` header auth."""

    api_name = "alpaca-trading-api"

    def __init__(self, key_id: str = "PKTEST", secret_key: str = "secret-test", **kwargs: Any):
        self.key_id = key_id
        self.secret_key = secret_key
        super().__init__(**kwargs)

    def authenticate(self, request: web.Request) -> bool:
        return (
            request.headers.get("APCA-API-KEY-ID") == self.key_id
            and request.headers.get("APCA-API-SECRET-KEY") == self.secret_key
        )

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/account", self.handle_account)
        app.router.add_post("/v2/orders", self.handle_post_order)
        app.router.add_get("/v2/orders", self.handle_list_orders)
        app.router.add_get("/v2/orders:by_client_order_id", self.handle_get_by_client_id)
        app.router.add_get("/v2/orders/{order_id}", self.handle_get_order)
        app.router.add_delete("/v2/orders/{order_id}", self.handle_cancel_order)
        app.router.add_get("/v2/positions", self.handle_positions)
        app.router.add_get("/v2/positions/{symbol_or_asset_id}", self.handle_position)
        app.router.add_get("/v2/assets/{symbol_or_asset_id}", self.handle_asset)
        app.router.add_get("/v2/clock", self.handle_clock)
        app.router.add_get("/v2/calendar", self.handle_calendar)
        app.router.add_get("/v2/account/configurations", self.handle_get_configurations)
        app.router.add_patch("/v2/account/configurations", self.handle_patch_configurations)


async def serve(fake: FakeAlpacaBase, port: int) -> None:
    """Run a fake until interrupted (the demo: point ``[broker] base_url`` at it)."""
    await fake.start(port)
    print(f"{fake.api_name} fake listening on {fake.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Fake Alpaca Trading API for demos and tests")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--key", default="PKTEST")
    parser.add_argument("--secret", default="secret-test")
    parser.add_argument("--closed", action="store_true", help="market closed")
    parser.add_argument(
        "--calendar",
        action="store_true",
        help="follow the calendar and its sessions (move the clock: POST /_control/clock)",
    )
    args = parser.parse_args(argv)
    market_open = None if args.calendar else not args.closed
    fake = FakeAlpacaTrading(key_id=args.key, secret_key=args.secret, market_open=market_open)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(fake, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

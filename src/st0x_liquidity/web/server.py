"""The dashboard's HTTP server (aiohttp), run by the bot as an app service.

Routes:

* ``GET /`` and ``/static/…`` — the single page (plain HTML/JS/CSS, no build);
* ``GET /api/ws`` — the WebSocket: one ``initial`` message, then incremental
  messages (``docs/dashboard.md``);
* ``GET /api/state`` — the same initial state as JSON, for scripts;
* ``POST /api/breaker`` — pause/resume hedging; needs ``Authorization: Bearer
  <token>`` with ``[dashboard] token``; every change is a
  ``CircuitBreakerChanged`` event and a row of ``circuit_breaker_log``. With
  ``{"action": "set-state", "symbol": "AAPL" | "all", "state": "active" |
  "reducing" | "halted", "reason": ...}`` it sets a trading state instead (a
  row of ``trading_state_log`` and a ``TradingStateChanged`` event);
* ``GET /health`` — 200 when ready, 503 with the failing checks otherwise;
* ``GET /metrics`` — Prometheus text exposition.

Read-only routes need no token when the server is bound to a loopback address;
bound elsewhere, every route but ``/health`` and ``/metrics`` asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from decimal import Decimal
from importlib import resources
from typing import Any

import attrs
from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..domain.symbols import InvalidSymbolError, Symbol
from ..errors import StoreError
from .metrics import build_registry
from .state import DashboardState

log = logging.getLogger(__name__)

STATIC = {
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
}
MAX_QUEUE = 20000
"""Messages a client may fall behind by before it is closed (it then reloads)."""
MIN_GAP = 0.2
"""Seconds between two reads of the log: bursts of commits are read together."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, default=_default, separators=(",", ":"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_host_header(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    return name == "localhost" or is_loopback(name)


def _same_origin(origin: str, host: str) -> bool:
    for scheme in ("http://", "https://"):
        if origin.startswith(scheme):
            return origin[len(scheme) :].rstrip("/") == host
    return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (the first address ``host`` resolves to).

    The dashboard binds before anything else starts, so a port another process
    holds stops ``run`` at once instead of leaving the bot running unseen.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _name, address = infos[0]
    sock = socket.create_server(address[:2], family=family, backlog=128)
    sock.setblocking(False)
    return sock


@attrs.define(eq=False)
class Client:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = attrs.field(factory=lambda: asyncio.Queue(maxsize=MAX_QUEUE))
    ready: asyncio.Event = attrs.field(factory=asyncio.Event)


@attrs.define
class Dashboard:
    state: DashboardState
    host: str
    port: int
    token: str | None
    status_interval: float = 2.0
    poll_interval: float = 1.0
    clients: set[Client] = attrs.field(factory=set)
    wake: asyncio.Event = attrs.field(factory=asyncio.Event)
    runner: web.AppRunner | None = None
    registry: Any = None
    url: str = ""

    # -- lifecycle -----------------------------------------------------------------

    def web_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_middleware])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/favicon.svg", self._favicon)
        app.router.add_get("/favicon.ico", self._favicon)
        app.router.add_get("/api/ws", self._ws)
        app.router.add_get("/api/state", self._state)
        app.router.add_post("/api/breaker", self._breaker)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, sock: socket.socket | None = None) -> str:
        """Serve on ``sock`` (bound by :func:`bind` at start-up), or bind host:port now."""
        self.registry = build_registry(self.state)
        self.runner = web.AppRunner(self.web_app(), access_log=None)
        await self.runner.setup()
        site: web.BaseSite
        if sock is not None:
            site = web.SockSite(self.runner, sock)
            port = int(sock.getsockname()[1])
        else:
            site = web.TCPSite(self.runner, self.host, self.port)
            port = self.port
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            port = int(sockets[0].getsockname()[1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        log.info("dashboard at %s", self.url)
        return self.url

    async def stop(self) -> None:
        for client in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await client.ws.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def on_commit(self, _events: Any) -> None:
        """Engine listener: something was committed; read it now."""
        self.wake.set()

    async def follow(self) -> None:
        """Read committed events and broadcast them; refresh status on a timer."""
        loop = asyncio.get_running_loop()
        next_status = loop.time() + self.status_interval
        last_status = ""
        last_inventory = ""
        while True:
            timeout = max(0.0, min(self.poll_interval, next_status - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
            # Coalesce a burst of commits into one read (the engine commits up to
            # hundreds of batches a second while it catches up with a backlog).
            await asyncio.sleep(MIN_GAP)
            self.wake.clear()
            watching = bool(self.clients)
            try:
                # Nobody watching: keep P&L, latencies and counts current, skip messages.
                messages = await self.state.catch_up(build=watching)
            except StoreError as exc:  # the database went away: /health says so
                log.warning("dashboard could not read new events: %s", exc)
                messages = []
            except Exception:
                log.exception("dashboard could not read new events")
                messages = []
            for message in messages:
                self.broadcast(message)
            self.state.observe()  # about once a second: what the latches hold on to
            if (messages and watching) or loop.time() >= next_status:
                next_status = loop.time() + self.status_interval
                status = {
                    "status": self.state.status(),
                    "alerts": await self.state.alerts(),
                    "health": await self.state.health(),
                }
                text = dumps(status)
                if text != last_status:
                    last_status = text
                    self.broadcast({"type": "status", "data": status})
                inventory = self.state.inventory()
                if inventory is not None:
                    text = dumps(inventory)
                    if text != last_inventory:
                        last_inventory = text
                        self.broadcast({"type": "inventory", "data": inventory})

    def broadcast(self, message: dict[str, Any]) -> None:
        text = dumps(message)
        for client in list(self.clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                # A client this far behind gets a fresh start instead of a gap.
                log.warning("dashboard client too slow; closing it so it reloads")
                self.clients.discard(client)
                with contextlib.suppress(asyncio.QueueFull):
                    client.queue.put_nowait(None)

    # -- auth ----------------------------------------------------------------------

    def _token_ok(self, request: web.Request) -> bool:
        if self.token is None:
            return False
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        given = given or request.query.get("token", "")
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def _auth_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        open_paths = ("/health", "/metrics")
        if is_loopback(self.host) and not _local_host_header(request.host):
            # DNS rebinding: a page on evil.example resolving to 127.0.0.1.
            return web.json_response({"error": "unexpected Host header"}, status=421)
        origin = request.headers.get("Origin")
        if request.path == "/api/ws" and origin and not _same_origin(origin, request.host):
            # Cross-site WebSocket hijacking: browsers send Origin, and only our page may read.
            return web.json_response({"error": "cross-origin WebSocket refused"}, status=403)
        if (
            not is_loopback(self.host)
            and request.path not in open_paths
            and request.path != "/api/breaker"
            and not self._token_ok(request)
        ):
            return web.json_response(
                {"error": "this dashboard is not bound to localhost: a token is required"},
                status=401,
            )
        return await handler(request)

    # -- handlers --------------------------------------------------------------------

    async def _index(self, _request: web.Request) -> web.Response:
        html = resources.files("st0x_liquidity").joinpath("data/dashboard.html").read_text()
        return web.Response(
            text=html,
            content_type="text/html",
            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
        )

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        body = resources.files("st0x_liquidity").joinpath(f"data/{name}").read_text()
        return web.Response(
            text=body, content_type=STATIC[name], headers={"Cache-Control": "no-store"}
        )

    async def _favicon(self, _request: web.Request) -> web.Response:
        body = resources.files("st0x_liquidity").joinpath("data/favicon.svg").read_text()
        return web.Response(
            text=body, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
        )

    async def _state(self, _request: web.Request) -> web.Response:
        return web.Response(text=dumps(await self.state.initial()), content_type="application/json")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        client = Client(ws)
        # Register before reading the state: anything committed meanwhile is queued
        # after the initial message, and the client applies updates idempotently.
        self.clients.add(client)
        sender = asyncio.create_task(self._send(client))
        try:
            initial = await self.state.initial()
            await ws.send_str(dumps({"type": "initial", "data": initial}))
            client.ready.set()  # what was queued meanwhile follows the snapshot
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str(dumps({"type": "pong"}))
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.clients.discard(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _send(self, client: Client) -> None:
        await client.ready.wait()  # the initial message goes first
        while True:
            text = await client.queue.get()
            if text is None:
                await client.ws.close()
                return
            try:
                await client.ws.send_str(text)
            except (ConnectionResetError, RuntimeError):
                return

    async def _breaker(self, request: web.Request) -> web.Response:
        if self.token is None:
            return web.json_response(
                {"error": "no [dashboard] token is configured: the breaker is read-only"},
                status=403,
            )
        if not self._token_ok(request):
            log.warning("circuit breaker change refused from %s: bad token", request.remote)
            return web.json_response({"error": "invalid or missing token"}, status=401)
        role = self.state.role()
        if not role.leader:
            return web.json_response(
                {"error": f"this instance is a standby ({role.detail}): change it on the leader"},
                status=409,
            )
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"error": "body must be JSON"}, status=400)
        if isinstance(body, dict) and body.get("action") == "set-state":
            return await self._set_state(request, body)
        if not isinstance(body, dict) or body.get("action") not in ("pause", "resume"):
            return web.json_response(
                {
                    "error": 'body must be {"action": "pause" | "resume", "reason": "..."} or '
                    '{"action": "set-state", "symbol": "AAPL" | "all", '
                    '"state": "active" | "reducing" | "halted", "reason": "..."}'
                },
                status=400,
            )
        action = str(body["action"])
        reason = str(
            body.get("reason")
            or ("paused from the dashboard" if action == "pause" else "resumed from the dashboard")
        )[:500]
        actor = str(body.get("actor") or "dashboard")[:100]
        await self.state.record_breaker(action, reason, actor, request.remote)
        breaker = self.state.breaker_json()
        self.broadcast(
            {
                "type": "breaker",
                "data": {**breaker, "history": await self.state.breaker_history()},
            }
        )
        self.wake.set()
        return web.json_response(breaker)

    async def _set_state(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        state = body.get("state")
        raw = body.get("symbol")
        reason = str(body.get("reason") or "").strip()[:500]
        if state not in ("active", "reducing", "halted") or not isinstance(raw, str) or not reason:
            return web.json_response(
                {"error": "set-state needs symbol (a ticker or 'all'), state (active, "
                 "reducing or halted) and a reason"},
                status=400,
            )
        if raw.lower() == "all":
            symbol = "*"
        else:
            try:
                symbol = Symbol.parse(raw).ticker
            except InvalidSymbolError as exc:
                return web.json_response({"error": str(exc)}, status=400)
        actor = str(body.get("actor") or "dashboard")[:100]
        risk = await self.state.record_trading_state(symbol, state, reason, actor, request.remote)
        self.broadcast({"type": "risk", "data": risk})
        self.wake.set()
        return web.json_response(risk)

    async def _health(self, _request: web.Request) -> web.Response:
        health = await self.state.health()
        return web.Response(
            text=dumps(health),
            status=200 if health["status"] == "ready" else 503,
            content_type="application/json",
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        # Alerts and readiness as of this scrape, not of the last status push.
        try:
            await self.state.alerts()
        except Exception:
            log.exception("dashboard could not evaluate alerts for /metrics")
            self.state.alert_counts = {}  # unknown: no st0x_alerts samples rather than stale ones
        await self.state.health()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

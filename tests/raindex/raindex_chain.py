"""Real chain peers for the raindex tests: anvil from npm, the devnet contracts, and a
JSON-RPC WebSocket proxy in front of anvil that can drop connections, refuse methods or
large log ranges, and swallow subscription notices (a stalled load-balanced RPC); and
``make_source``, a source tuned for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from st0x_testing import raindex_devnet as dn

from st0x_liquidity.config import EvmConfig
from st0x_liquidity.protocols import (
    CheckpointItem,
    FillItem,
    RevertedItem,
    SkippedItem,
    SourceItem,
)
from st0x_liquidity.raindex.source import RaindexConfig, RaindexSource
from st0x_liquidity.store.sqlite import SqliteStore


def make_source(
    url: str, devnet: dn.Devnet, store: SqliteStore | None, **overrides: Any
) -> RaindexSource:
    """A source tuned for tests: fast polls, short stalls and backoffs, every devnet
    equity priced by its Pyth feed; ``overrides`` replace any setting."""
    settings: dict[str, Any] = {
        "poll_interval": 0.2,
        "stall_timeout": 5.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
        "checkpoint_interval": 0.0,
        "usdc_address": devnet.usdc,
        "pyth_address": devnet.pyth,
        "pyth_feeds": {s: "0x" + dn.feed_id(s).hex() for s in devnet.equities},
    }
    settings.update(overrides)
    evm = EvmConfig(
        url,
        devnet.orderbook,
        dn.MAKER,
        devnet.deployment_block,
        orderbook_interface=devnet.interface,
    )
    return RaindexSource(RaindexConfig(**settings), evm, store)


class RpcProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refuse_methods: set[str] = set()
        self.max_log_range: int | None = None
        self.drop_notifications = False
        self.garbage: dict[str, int] = {}
        """method -> how many more answers to replace with a malformed result"""
        self.requests: list[str] = []
        self.hold_methods: set[str] = set()
        """methods whose requests wait (unanswered) until :meth:`release` is called"""
        self.released = asyncio.Event()
        self.held: list[str] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/", self._ws)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def release(self) -> None:
        """Let the held requests (and any later ones) through to the node."""
        self.hold_methods = set()
        self.released.set()

    async def _forward_later(self, upstream: Any, text: str) -> None:
        await self.released.wait()
        with contextlib.suppress(Exception):
            await upstream.send_str(text)

    async def kill_connections(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1011, message=b"killed by test")

    async def stop(self) -> None:
        await self.kill_connections()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _refusal(self, request: dict[str, Any]) -> dict[str, Any] | None:
        method = request.get("method")
        if method in self.refuse_methods:
            return {
                "code": -32601,
                "message": f"the method {method} does not exist/is not available",
            }
        if method == "eth_getLogs" and self.max_log_range is not None:
            params = request["params"][0]
            span = int(params["toBlock"], 16) - int(params["fromBlock"], 16) + 1
            if span > self.max_log_range:
                return {
                    "code": -32005,
                    "message": f"query exceeds max block range {self.max_log_range}",
                }
        return None

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        self._sockets.add(client)
        assert self._session is not None
        try:
            async with self._session.ws_connect(self.upstream, max_msg_size=0) as upstream:

                async def down() -> None:
                    async for msg in upstream:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        if self.drop_notifications and '"eth_subscription"' in msg.data:
                            continue
                        await client.send_str(msg.data)
                    await client.close()

                pump = asyncio.create_task(down())
                holding: set[asyncio.Task[None]] = set()
                try:
                    async for msg in client:
                        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            break
                        text = msg.data if isinstance(msg.data, str) else msg.data.decode()
                        body = json.loads(text)
                        self.requests.append(str(body.get("method")))
                        method = str(body.get("method"))
                        if self.garbage.get(method, 0) > 0:
                            self.garbage[method] -= 1
                            await client.send_str(
                                json.dumps(
                                    {
                                        "jsonrpc": "2.0",
                                        "id": body.get("id"),
                                        "result": {"nonsense": 1},
                                    }
                                )
                            )
                            continue
                        if method in self.hold_methods:
                            self.held.append(method)
                            task = asyncio.create_task(self._forward_later(upstream, text))
                            holding.add(task)
                            task.add_done_callback(holding.discard)
                            continue
                        refusal = self._refusal(body)
                        if refusal is not None:
                            await client.send_str(
                                json.dumps(
                                    {"jsonrpc": "2.0", "id": body.get("id"), "error": refusal}
                                )
                            )
                            continue
                        await upstream.send_str(text)
                finally:
                    for task in list(holding):
                        task.cancel()
                    pump.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pump
        except aiohttp.ClientError:
            pass
        finally:
            self._sockets.discard(client)
        return client


class Collector:
    """Runs a source's stream in a task and records what it yields."""

    def __init__(self, source: RaindexSource, cursor: Any = None) -> None:
        self.source = source
        self.items: list[SourceItem] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(cursor))

    async def _run(self, cursor: Any) -> None:
        async for item in self.source.stream(cursor):
            self.items.append(item)
            self.changed.set()

    @property
    def fills(self) -> list[FillItem]:
        return [i for i in self.items if isinstance(i, FillItem)]

    @property
    def skipped(self) -> list[SkippedItem]:
        return [i for i in self.items if isinstance(i, SkippedItem)]

    @property
    def reverted(self) -> list[RevertedItem]:
        return [i for i in self.items if isinstance(i, RevertedItem)]

    @property
    def last_cursor(self) -> Any:
        return self.items[-1].cursor if self.items else None

    def checkpoints(self) -> list[CheckpointItem]:
        return [i for i in self.items if isinstance(i, CheckpointItem)]

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self.task.done():
                    self.task.result()
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.5)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.source.close()


async def aiter_items(source: RaindexSource, cursor: Any) -> AsyncIterator[SourceItem]:
    async for item in source.stream(cursor):
        yield item

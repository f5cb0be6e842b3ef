"""A thin JSON-RPC client over web3.py's providers (asyncio WebSocket, or HTTP).

Only raw JSON-RPC goes through here (``provider.make_request``), so the source
sees exactly what the node said. Two kinds of failure, kept apart because the
source reacts differently: :class:`RpcError` (the node answered with an error:
the request may be the problem, e.g. a log range too large) and
:class:`NodeUnavailable` (no answer: reconnect with backoff).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider
from web3.exceptions import Web3RPCError

log = logging.getLogger(__name__)


MAX_MESSAGE = 512 * 1024 * 1024
"""Largest WebSocket message accepted (an eth_getLogs answer over many blocks)."""


class RpcError(Exception):
    """The node answered a request with a JSON-RPC error."""

    def __init__(self, method: str, error: Any) -> None:
        self.method = method
        self.code = error.get("code") if isinstance(error, dict) else None
        self.text = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        super().__init__(f"{method}: {self.text}"[:300])


class NodeUnavailable(Exception):
    """The node could not be reached, or the connection broke."""


class _PatientWebSocketProvider(WebSocketProvider):
    """web3's WebSocketProvider, waiting for answers without spinning the event loop.

    web3 (7.x/8.x) waits for each answer with ``while True: await asyncio.sleep(0)``,
    which keeps a CPU core busy for the whole round trip and starves nothing but
    burns the shared 2-core budget while the engine runs beside the source. This
    override polls the same response cache with a short growing sleep (≤ 2 ms).
    If web3's internals ever change shape, it falls back to web3's own wait.
    """

    async def _get_response_for_request_id(
        self,
        request_id: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - web3 signature
    ) -> Any:
        processor = getattr(self, "_request_processor", None)
        cache = getattr(processor, "_request_response_cache", None)
        check = getattr(self, "_handle_listener_task_exceptions", None)
        if cache is None or check is None or processor is None:
            return await super()._get_response_for_request_id(request_id, timeout)
        from web3._utils.caching.caching_utils import generate_cache_key
        from web3.exceptions import TimeExhausted

        key = generate_cache_key(request_id)

        async def wait() -> Any:
            delay = 0.0
            while True:
                check()
                if key in cache:
                    return await processor.pop_raw_response(cache_key=key)
                await asyncio.sleep(delay)
                delay = min(0.002, delay + 0.0002)

        try:
            return await asyncio.wait_for(wait(), timeout or self.request_timeout)
        except TimeoutError:
            raise TimeExhausted(f"no answer to request {request_id} within the timeout") from None


def _observe_listener(provider: Any) -> None:
    """Mark the end of web3's socket-reader task as seen: a dropped socket is handled by
    the source (NodeUnavailable on the next request), not reported by asyncio at exit."""
    task = getattr(provider, "_message_listener_task", None)
    if isinstance(task, asyncio.Task):
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _observed(request: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """``request`` as a task whose failure counts as seen.

    When the task waiting on a request is cancelled (shutdown) while the node goes
    away (the demo's anvil gets the same Ctrl-C), the request's task can end with
    the socket's error instead of the cancel; ``wait_for`` then raises
    CancelledError without reading it, and asyncio logs "Task exception was never
    retrieved" with a traceback. The caller learns what it needs either way.
    """
    task = asyncio.ensure_future(request)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that ``asyncio.wait_for`` lost.

    On Python 3.11, ``wait_for`` returns the inner result when it completed in the
    same loop turn as the cancel of the waiting task; the task then runs on as if
    never cancelled (it hung the engine's shutdown, waiting for a source that kept
    walking). The request stays counted in ``Task.cancelling()``, so check it after
    every ``wait_for``.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def is_websocket(url: str) -> bool:
    return url.startswith(("ws://", "wss://"))


class Node:
    """One connection to an EVM node; ``on_head`` is called for each new-head notice."""

    def __init__(self, url: str, request_timeout: float) -> None:
        self.url = url
        self.request_timeout = request_timeout
        self.websocket = is_websocket(url)
        self._w3: AsyncWeb3[Any] | None = None
        self._sub_w3: AsyncWeb3[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.closed_reason: str | None = None

    def _ws_provider(self) -> Any:
        # No silenced listener errors: web3 would then spin on a dead socket.
        # Log ranges can be large: lift websockets' 1 MiB frame limit.
        return _PatientWebSocketProvider(
            self.url,
            websocket_kwargs={"max_size": MAX_MESSAGE},
            max_connection_retries=1,
            request_timeout=self.request_timeout,
        )

    async def connect(self, on_head: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Open the request connection and, with ``on_head``, a second one for ``newHeads``.

        The subscription has a connection of its own: on a socket that also carries
        requests, a notice can wait ~40 ms behind the node's unacknowledged last answer
        (Nagle against delayed ACK; measured with anvil), and a busy request stream
        must not delay the wake-up either.
        """
        try:
            if self.websocket:
                provider = self._ws_provider()
                w3: AsyncWeb3[Any] = AsyncWeb3(provider)
                await asyncio.wait_for(provider.connect(), self.request_timeout)
                _observe_listener(provider)
                self._w3 = w3
                if on_head is not None:
                    sub_provider = self._ws_provider()
                    sub: AsyncWeb3[Any] = AsyncWeb3(sub_provider)
                    await asyncio.wait_for(sub_provider.connect(), self.request_timeout)
                    _observe_listener(sub_provider)
                    self._sub_w3 = sub
                    await asyncio.wait_for(sub.eth.subscribe("newHeads"), self.request_timeout)
                    self._listener = asyncio.create_task(
                        self._listen(sub, on_head), name="raindex-heads"
                    )
            else:
                self._w3 = AsyncWeb3(
                    AsyncHTTPProvider(self.url, request_kwargs={"timeout": self.request_timeout})
                )
                await self.request("eth_chainId", [])
            raise_if_cancelled()
        except (RpcError, NodeUnavailable):
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise NodeUnavailable(
                f"cannot connect to {self.url}: {type(exc).__name__}: {exc}"
            ) from None

    async def _listen(self, w3: AsyncWeb3[Any], on_head: Callable[[dict[str, Any]], None]) -> None:
        try:
            async for message in w3.socket.process_subscriptions():
                result = message.get("result") if isinstance(message, dict) else None
                on_head(dict(result) if result is not None else {})
            self.closed_reason = "subscription stream ended"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.closed_reason = f"{type(exc).__name__}: {exc}"
        on_head({})  # wake the waiter so it sees the closed connection

    @property
    def alive(self) -> bool:
        return self._w3 is not None and self.closed_reason is None

    async def request(self, method: str, params: list[Any]) -> Any:
        w3 = self._w3
        if w3 is None:
            raise NodeUnavailable("not connected")
        if self.closed_reason is not None:
            raise NodeUnavailable(self.closed_reason)
        try:
            response = await asyncio.wait_for(
                _observed(w3.provider.make_request(method, params)),
                self.request_timeout,
            )
            raise_if_cancelled()
        except Web3RPCError as exc:
            raise RpcError(
                method, exc.rpc_response.get("error") if exc.rpc_response else str(exc)
            ) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise NodeUnavailable(f"{method}: {type(exc).__name__}: {exc}"[:300]) from None
        if not isinstance(response, dict):
            raise NodeUnavailable(f"{method}: malformed response {response!r:.80}")
        if response.get("error") is not None:
            raise RpcError(method, response["error"])
        return response.get("result")

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        for w3 in (self._sub_w3, self._w3):
            if w3 is None:
                continue
            provider: Any = w3.provider
            try:
                if hasattr(provider, "disconnect"):
                    await asyncio.wait_for(provider.disconnect(), 5)
            except Exception as exc:  # closing a broken socket may fail; it is gone either way
                log.debug("closing %s: %s", self.url, exc)
        self._w3 = self._sub_w3 = None

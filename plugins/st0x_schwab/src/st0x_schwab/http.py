"""One aiohttp session to Schwab with a request budget, retries and error classes.

Classification (docs/brokers/schwab.md has the table):

* transport failure or 5xx on a read: retried with exponential backoff, then
  :class:`RetryableBrokerError`;
* transport failure, timeout or 5xx on an order POST: never retried here, always
  :class:`AmbiguousBrokerError` (the order may exist; the engine reconciles);
* 429: :class:`RetryableBrokerError` carrying ``Retry-After`` when Schwab sends it;
* 401: :class:`Unauthorized`, which the token layer turns into a refresh and one
  more try, or into :class:`AuthenticationRequiredError`;
* any other 4xx: :class:`FinalBrokerError` with Schwab's message.

``SchwabHttp.stats`` counts, per failed attempt in this process (a retried
request counts each time it failed), ``request_errors`` (transport failure,
timeout, any non-2xx including 401 and 429) and ``rate_limited`` (the 429s);
the executor exposes it as ``executor.stats`` for the dashboard's ``/metrics``.

Nothing here ever formats a header, a request body or a token into a message.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import aiohttp
import attrs

from st0x_liquidity import (
    AmbiguousBrokerError,
    BrokerError,
    FinalBrokerError,
    RetryableBrokerError,
)

from .parsing import error_message, retry_after

log = logging.getLogger(__name__)

Kind = Literal["read", "order", "token"]


class Unauthorized(FinalBrokerError):
    """HTTP 401 from Schwab: the access token is expired or revoked."""


@attrs.frozen
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RateLimiter:
    """At most ``per_minute`` requests in any sliding 60-second window."""

    def __init__(
        self,
        per_minute: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_minute = per_minute
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self._monotonic = monotonic
        self._sleep = sleep

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._monotonic()
                while self._sent and now - self._sent[0] >= 60.0:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    return
                await self._sleep(60.0 - (now - self._sent[0]))


class SchwabHttp:
    def __init__(
        self,
        root: str,
        *,
        timeout: float,
        max_retries: int,
        backoff: float,
        per_minute: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.root = root.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._backoff = backoff
        self._sleep = sleep
        self.limiter = RateLimiter(per_minute, sleep=sleep)
        self._session: aiohttp.ClientSession | None = None
        self.stats: dict[str, int] = {"request_errors": 0, "rate_limited": 0}

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        action: str,
        *,
        kind: Kind = "read",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request; return a 2xx reply or raise a classified BrokerError."""
        await self.start()
        assert self._session is not None
        url = self.root + path
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire()
            try:
                async with self._session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    params=dict(params) if params else None,
                    json=json_body,
                    data=dict(form) if form is not None else None,
                    allow_redirects=False,
                ) as resp:
                    body = await resp.read()
                    reply = Reply(resp.status, dict(resp.headers), body)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self.stats["request_errors"] += 1
                what = type(exc).__name__
                if kind == "order":
                    raise AmbiguousBrokerError(
                        f"Schwab {action}: connection failed ({what}); the order may or may "
                        "not have been placed"
                    ) from None
                if attempt <= self._max_retries:
                    await self._pause(attempt, action, what)
                    continue
                raise RetryableBrokerError(f"Schwab {action}: unreachable ({what})") from None
            if 200 <= reply.status < 300:
                return reply
            self.stats["request_errors"] += 1
            if reply.status == 429:
                self.stats["rate_limited"] += 1
            error = self._classify(reply, action, kind)
            if (
                isinstance(error, RetryableBrokerError)
                and kind != "order"
                and reply.status >= 500
                and attempt <= self._max_retries
            ):
                await self._pause(attempt, action, f"HTTP {reply.status}")
                continue
            raise error

    async def _pause(self, attempt: int, action: str, what: str) -> None:
        delay = min(self._backoff * 2 ** (attempt - 1), 60.0)
        log.info("Schwab %s failed (%s); retry %d in %.1fs", action, what, attempt, delay)
        await self._sleep(delay)

    @staticmethod
    def _classify(reply: Reply, action: str, kind: Kind) -> BrokerError:
        return classify(reply.status, reply.headers, reply.body, action, kind)


def classify(
    status: int, headers: Mapping[str, str], body: bytes, action: str, kind: Kind
) -> BrokerError:
    """The BrokerError for a non-2xx Schwab reply."""
    message = error_message(body)
    text = f"Schwab {action}: HTTP {status}: {message}"
    if status == 401 and kind != "token":
        return Unauthorized(text)
    if status == 429:
        lowered = {k.lower(): v for k, v in headers.items()}
        return RetryableBrokerError(text, retry_after=retry_after(lowered.get("retry-after")))
    if status >= 500 or status == 408:
        if kind == "order":
            return AmbiguousBrokerError(text + " (the order may or may not have been placed)")
        return RetryableBrokerError(text)
    return FinalBrokerError(text)

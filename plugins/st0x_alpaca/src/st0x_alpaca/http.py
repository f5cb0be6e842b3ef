"""HTTP plumbing shared by both Alpaca plugins (Trading API and Broker API).

One :class:`AlpacaHttp` per executor owns the single ``aiohttp`` session, the
client-side rate limiter, timeouts, retries and the classification of every
failure into the core's broker errors:

* 429: wait ``Retry-After`` (else ``X-RateLimit-Reset``, else backoff) and try
  again; the request was refused, so this is safe even for an order POST. When
  attempts run out: :class:`~st0x_liquidity.RetryableBrokerError`.
* 5xx, timeouts, dropped connections: reads are retried with capped
  exponential backoff; an order POST is **never** re-sent here, it becomes
  :class:`~st0x_liquidity.AmbiguousBrokerError` (the executor resolves it by
  ``client_order_id``). A refused TCP connect is safe to retry for any request.
* 401, and 403 without an Alpaca error code (``{"message": "forbidden."}``):
  :class:`~st0x_liquidity.AuthenticationRequiredError`. A 403 that carries a
  code (``40310000`` "insufficient buying power") is an order rejection.
* other 4xx: :class:`AlpacaRejection` (a ``FinalBrokerError``) with Alpaca's
  code and message.

``AlpacaHttp.stats`` counts what happened on the wire in this process, one per
failed attempt (a retried request counts each time it failed):
``request_errors`` every failed attempt (connection error, timeout, 4xx
including 429, 5xx, unreadable 2xx body) and ``rate_limited`` the 429s among
them. The executors expose the same dict as ``executor.stats`` for the
dashboard's ``/metrics``.

Authentication is the only thing the two APIs do differently here, so it comes
in as a callable producing headers. Secret values are scrubbed from every
message this module builds.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp
import attrs
from multidict import CIMultiDict

from st0x_liquidity import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    FinalBrokerError,
    RetryableBrokerError,
)

from .wire import MalformedReplyError, json_loads

log = logging.getLogger(__name__)


class RequestKind(enum.Enum):
    READ = "read"
    """Idempotent: safe to send again after any failure."""
    ORDER = "order"
    """Creates something at Alpaca: never sent twice by this module."""


class AlpacaRejection(FinalBrokerError):
    """Alpaca refused the request (4xx other than 401/429)."""

    def __init__(self, status: int, code: int | None, api_message: str, what: str) -> None:
        self.status = status
        self.code = code
        self.api_message = api_message
        code_text = f" code {code}" if code is not None else ""
        super().__init__(f"{what}: HTTP {status}{code_text}: {api_message}")

    @property
    def duplicate_client_order_id(self) -> bool:
        return self.status == 422 and "client_order_id" in self.api_message.lower() and (
            "unique" in self.api_message.lower() or "duplicate" in self.api_message.lower()
        )


class _Problem(Exception):
    """One failed attempt: ``ambiguous`` if the request may have taken effect."""

    def __init__(self, text: str, *, ambiguous: bool = False, wait: float | None = None) -> None:
        super().__init__(text)
        self.ambiguous = ambiguous
        self.wait = wait


class AlpacaNotFound(AlpacaRejection):
    """HTTP 404: no such order / account / resource."""


@attrs.frozen
class HttpSettings:
    """Timeouts, limits and retry policy (all seconds unless named otherwise)."""

    base_url: str
    timeout: float = 10.0
    connect_timeout: float = 5.0
    rate_limit_per_minute: float = 190.0
    rate_limit_burst: int = 10
    max_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 60.0
    user_agent: str = "st0x-liquidity-alpaca"


@attrs.frozen
class Reply:
    status: int
    headers: Mapping[str, str]
    data: Any


class RateLimiter:
    """Token bucket: ``burst`` requests at once, ``per_minute`` sustained.

    Any 60-second window then holds at most ``burst + per_minute`` requests, so
    the defaults (10 + 190) stay within Alpaca's documented 200/min. The server
    can also pause it (``X-RateLimit-Remaining: 0`` or a 429).
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("rate limit must be positive and burst at least 1")
        self.rate = per_minute / 60.0
        self.capacity = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause_until(self, when: float) -> None:
        """No request leaves before monotonic time ``when``."""
        self._paused_until = max(self._paused_until, when)
        self._tokens = min(self._tokens, 0.0)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def error_details(body: bytes) -> tuple[int | None, str]:
    """Alpaca's error body ``{"code": 40010001, "message": "..."}``, leniently."""
    try:
        data = json_loads(body)
    except MalformedReplyError:
        data = None
    code: int | None = None
    message = ""
    if isinstance(data, dict):
        raw_code = data.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        raw_message = data.get("message")
        if isinstance(raw_message, str):
            message = raw_message
    if not message:
        message = body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    return code, message[:500]


class AlpacaHttp:
    """The one session, rate limiter and retry loop of an executor."""

    def __init__(
        self,
        settings: HttpSettings,
        auth_headers: Callable[[], Mapping[str, str]],
        secrets: Iterable[str] = (),
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._auth_headers = auth_headers
        self._secrets = tuple(s for s in secrets if s)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self._base = settings.base_url.rstrip("/")
        self.stats: dict[str, int] = {"request_errors": 0, "rate_limited": 0}
        self.before_order: Callable[[], Awaitable[None]] | None = None
        """Awaited before every attempt of an order request, retries included: the
        engine's lease check (``ExecutorContext.store.verify_lease``), so a holder that
        lost its lease while this loop waited to re-send a refused POST sends nothing."""

    async def open(self) -> None:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=self.settings.timeout, sock_connect=self.settings.connect_timeout
            )
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                headers={"User-Agent": self.settings.user_agent, "Accept": "application/json"},
                raise_for_status=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.backoff_max, self.settings.backoff_initial * 2.0 ** (attempt - 1))
        return float(base * (0.5 + random.random() / 2))

    def _note_rate_headers(self, headers: Mapping[str, str]) -> float | None:
        """Pause the limiter when the server says the budget is spent; return the wait."""
        remaining = _header_float(headers, "X-RateLimit-Remaining")
        reset = _header_float(headers, "X-RateLimit-Reset")
        if remaining is None or remaining > 0 or reset is None:
            return None
        wait = min(self.settings.retry_after_max, max(0.0, reset - time.time()))
        self.limiter.pause_until(time.monotonic() + wait)
        return wait

    async def request(
        self,
        method: str,
        path: str,
        *,
        kind: RequestKind = RequestKind.READ,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        what: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one logical request; return a 2xx reply with its JSON decoded.

        ``headers`` are added to the authentication headers (e.g. the
        ``Idempotency-Key`` Alpaca documents for tokenization requests).
        Raises only :class:`~st0x_liquidity.BrokerError` subclasses.
        """
        what = what or f"{method} {path}"
        attempts = max(1, self.settings.max_attempts)
        problem = _Problem("no attempt made")
        for attempt in range(1, attempts + 1):
            await self.limiter.acquire()
            if kind is RequestKind.ORDER and self.before_order is not None:
                await self.before_order()
            try:
                return await self._attempt(
                    method, path, params, json_body, what=what, extra_headers=headers or {}
                )
            except _Problem as exc:
                problem = exc
            if problem.ambiguous and kind is RequestKind.ORDER:
                raise AmbiguousBrokerError(
                    f"{what}: {problem}; the order may or may not exist"
                ) from None
            if attempt < attempts:
                if problem.wait is None:
                    await self._sleep(self._backoff(attempt))
                continue
        raise RetryableBrokerError(f"{what}: {problem}", retry_after=problem.wait)

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        *,
        what: str,
        extra_headers: Mapping[str, str],
    ) -> Reply:
        try:
            return await self._send(
                method, path, params, json_body, what=what, extra_headers=extra_headers
            )
        except (_Problem, FinalBrokerError):
            self.stats["request_errors"] += 1
            raise

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        *,
        what: str,
        extra_headers: Mapping[str, str],
    ) -> Reply:
        await self.open()
        assert self._session is not None
        headers = {**self._auth_headers(), **extra_headers}
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=params,
                json=json_body,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                status = resp.status
                # Case-insensitive: HTTP/2 proxies lower-case header names.
                resp_headers: Mapping[str, str] = CIMultiDict(resp.headers)
        except aiohttp.ClientConnectorError as exc:
            # Nothing reached the server: safe to try again, even for an order.
            raise _Problem(self.redact(f"cannot connect: {exc}")) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            text = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__} {exc}"
            raise _Problem(self.redact(text.strip()), ambiguous=True) from None

        self._note_rate_headers(resp_headers)
        if status == 429:
            self.stats["rate_limited"] += 1
            wait = self._rate_limit_wait(resp_headers)
            log.warning("%s: rate limited by Alpaca, waiting %.2fs", what, wait)
            raise _Problem("rate limited (HTTP 429)", wait=wait)
        if status >= 500:
            _code, message = error_details(body)
            raise _Problem(self.redact(f"HTTP {status}: {message}"), ambiguous=True)
        if status >= 400 or status < 200:
            raise self._client_error(status, body, what)
        if status == 204 or not body.strip():
            return Reply(status, resp_headers, None)
        try:
            data = json_loads(body)
        except MalformedReplyError as exc:
            raise _Problem(f"unreadable reply: {exc}", ambiguous=True) from None
        return Reply(status, resp_headers, data)

    def _rate_limit_wait(self, headers: Mapping[str, str]) -> float:
        wait = parse_retry_after(headers.get("Retry-After"))
        if wait is None:
            reset = _header_float(headers, "X-RateLimit-Reset")
            wait = max(0.0, reset - time.time()) if reset is not None else None
        if wait is None:
            wait = self._backoff(1)
        wait = min(wait, self.settings.retry_after_max)
        self.limiter.pause_until(time.monotonic() + wait)
        return wait

    def _client_error(self, status: int, body: bytes, what: str) -> FinalBrokerError:
        code, message = error_details(body)
        message = self.redact(message)
        if status == 401 or (status == 403 and code is None):
            return AuthenticationRequiredError(
                f"{what}: Alpaca refused the credentials (HTTP {status}: {message})"
            )
        if status == 404:
            return AlpacaNotFound(status, code, message, what)
        return AlpacaRejection(status, code, message, what)

"""Circle's attestation service (Iris API v2) over aiohttp, and attestation polling.

Facts: ``reference/rebalancing.md`` §6.1 and §10.6. Iris answers 404 until it has indexed
a burn (expected: keep polling), then one entry per ``MessageSent`` of the transaction,
``status`` ``"complete"`` once signed. The answers are read tolerantly (numbers or decimal
strings; ``attestation: "PENDING"``), but the attested message's own bytes are the truth
for the nonce, fee and expiration whenever they are present.

Errors are classified so callers know what to do: :class:`IrisUnavailable` (5xx,
connection, timeout) and :class:`IrisRateLimited` (429, with ``retry_after``) are worth
retrying; any other :class:`IrisError` (a 4xx, a malformed answer) is not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import attrs

from .message import CctpMessage, CctpMessageError, decode_message, nonce_of, to_bytes32

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 300.0
"""Iris blocks a client for 5 minutes after it exceeds the rate limit (§10.6)."""


class IrisError(Exception):
    """Iris answered something this client cannot use (not worth retrying as is)."""


class IrisUnavailable(IrisError):
    """No usable answer: 5xx, connection refused/reset, timeout. Retry with backoff."""


class IrisRateLimited(IrisError):
    """429: wait ``retry_after`` seconds before the next request."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"Iris rate limit reached: retry after {retry_after:g}s")


class IrisNotFound(IrisError):
    """404 on an endpoint where it is not the normal "not indexed yet" (re-attestation)."""


class AttestationTimeout(IrisError):
    """No complete attestation before the deadline; ``last`` is what Iris said last."""

    def __init__(self, message: str, last: IrisMessage | None) -> None:
        self.last = last
        super().__init__(message)


@attrs.frozen
class FeeTier:
    finality_threshold: int
    minimum_fee_bps: Decimal


@attrs.frozen
class IrisMessage:
    """One entry of ``/v2/messages``; ``message``/``attestation`` only once signed."""

    status: str
    message: bytes | None
    attestation: bytes | None
    nonce: str | None
    expiration_block: int | None
    fee_executed: int | None
    delay_reason: str | None
    finality_threshold_executed: int | None = None

    @property
    def complete(self) -> bool:
        return self.status == "complete" and bool(self.message) and bool(self.attestation)

    def decoded(self) -> CctpMessage:
        """The attested message decoded (:class:`CctpMessageError` if it is not a burn)."""
        if not self.message:
            raise CctpMessageError("Iris gave no message yet")
        return decode_message(self.message)


# -- parsing (pure) -------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise IrisError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value[:2] in ("0x", "0X") else int(value)
        except ValueError:
            raise IrisError(f"expected an integer, got {value!r:.40}") from None
    raise IrisError(f"expected an integer, got {value!r:.40}")


def _hex_bytes(value: Any, what: str) -> bytes | None:
    if value is None or not isinstance(value, str):
        return None
    if value.upper() == "PENDING" or value in ("", "0x"):
        return None
    text = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise IrisError(f"{what} is not hex: {value!r:.40}") from None


def parse_fees(data: Any) -> list[FeeTier]:
    """``/v2/burn/USDC/fees`` answer: an array of ``{finalityThreshold, minimumFee}``."""
    if not isinstance(data, list):
        raise IrisError(f"fee answer is not a list: {str(data)[:80]}")
    tiers = []
    for entry in data:
        if not isinstance(entry, dict):
            raise IrisError(f"fee entry is not an object: {str(entry)[:80]}")
        threshold = _int(entry.get("finalityThreshold"))
        raw = entry.get("minimumFee")
        try:
            fee = Decimal(str(raw)) if isinstance(raw, int | str | Decimal) else None
        except InvalidOperation:
            fee = None
        if threshold is None or fee is None or not fee.is_finite() or fee < 0:
            raise IrisError(f"malformed fee entry: {str(entry)[:80]}")
        tiers.append(FeeTier(threshold, fee))
    return tiers


def fast_fee(tiers: list[FeeTier], finality_threshold: int = 1000) -> Decimal:
    """The fee (bps) of the tier with this finality; IrisError when Iris lists none."""
    for tier in tiers:
        if tier.finality_threshold == finality_threshold:
            return tier.minimum_fee_bps
    raise IrisError(f"Iris lists no fee for finality threshold {finality_threshold}")


def parse_message(entry: Any) -> IrisMessage:
    if not isinstance(entry, dict):
        raise IrisError(f"message entry is not an object: {str(entry)[:80]}")
    status = entry.get("status")
    if not isinstance(status, str):
        raise IrisError(f"message entry has no status: {str(entry)[:80]}")
    message = _hex_bytes(entry.get("message"), "message")
    attestation = _hex_bytes(entry.get("attestation"), "attestation")
    raw_decoded = entry.get("decodedMessage")
    decoded: dict[str, Any] = raw_decoded if isinstance(raw_decoded, dict) else {}
    raw_body = decoded.get("decodedMessageBody")
    body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
    nonce: str | None = None
    raw_nonce = decoded.get("nonce", entry.get("eventNonce"))
    if isinstance(raw_nonce, str) and raw_nonce.startswith(("0x", "0X")):
        try:
            nonce = to_bytes32(raw_nonce)
        except CctpMessageError:
            nonce = None
    fee = _int(body.get("feeExecuted"))
    expiration = _int(body.get("expirationBlock"))
    finality = _int(decoded.get("finalityThresholdExecuted"))
    if message is not None and status == "complete":
        # The signed bytes are what the mint checks: read the fields from them.
        try:
            parsed = decode_message(message)
        except CctpMessageError:
            nonce = nonce_of(message) if len(message) >= 148 else nonce
        else:
            nonce = parsed.nonce
            fee = parsed.burn.fee_executed
            expiration = parsed.burn.expiration_block
            finality = parsed.finality_threshold_executed
    delay = entry.get("delayReason")
    return IrisMessage(
        status=status,
        message=message if status == "complete" else None,
        attestation=attestation if status == "complete" else None,
        nonce=nonce,
        expiration_block=expiration,
        fee_executed=fee,
        delay_reason=delay if isinstance(delay, str) and delay else None,
        finality_threshold_executed=finality,
    )


def parse_messages(data: Any) -> list[IrisMessage]:
    if not isinstance(data, dict):
        raise IrisError(f"messages answer is not an object: {str(data)[:80]}")
    entries = data.get("messages")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise IrisError(f"messages is not a list: {str(entries)[:80]}")
    return [parse_message(e) for e in entries]


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER
    return max(0.0, seconds) if math.isfinite(seconds) else DEFAULT_RETRY_AFTER


# -- the client -----------------------------------------------------------------------


class IrisClient:
    """HTTP client for Iris v2 (no auth; ``base_url`` e.g. ``https://iris-api.circle.com``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        """Requests sent (for the benchmark's count of calls per flow)."""

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def _request(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        url = f"{self.base_url}{path}"
        self.requests += 1
        try:
            async with self._client().request(method, url, params=params) as response:
                status = response.status
                text = await response.text()
                if status == 429:
                    raise IrisRateLimited(_retry_after(response.headers.get("Retry-After")))
        except IrisError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise IrisUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}"[:300]) from None
        if status >= 500:
            raise IrisUnavailable(f"{method} {path}: HTTP {status} {text[:120]}")
        if status == 404:
            return status, None
        if status >= 400:
            raise IrisError(f"{method} {path}: HTTP {status} {text[:200]}")
        try:
            return status, json.loads(text, parse_float=Decimal) if text else None
        except ValueError:
            raise IrisError(f"{method} {path}: answer is not JSON: {text[:80]!r}") from None

    async def fees(self, src_domain: int, dst_domain: int) -> list[FeeTier]:
        status, data = await self._request("GET", f"/v2/burn/USDC/fees/{src_domain}/{dst_domain}")
        if status == 404:
            raise IrisNotFound(f"Iris has no fees for {src_domain} -> {dst_domain}")
        return parse_fees(data)

    async def messages(self, src_domain: int, tx_hash: str) -> list[IrisMessage]:
        """The burn transaction's messages; [] while Iris has not seen it (404 or empty)."""
        status, data = await self._request(
            "GET", f"/v2/messages/{src_domain}", {"transactionHash": tx_hash}
        )
        if status == 404 or data is None:
            return []
        return parse_messages(data)

    async def reattest(self, nonce_hex: str) -> Any:
        """Ask for a fresh attestation (new expiration) of a message already attested."""
        nonce = to_bytes32(nonce_hex)
        status, data = await self._request("POST", f"/v2/reattest/{nonce}")
        if status == 404:
            raise IrisNotFound(f"Iris knows no message with nonce {nonce}")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# -- polling --------------------------------------------------------------------------


async def _poll(
    client: IrisClient,
    src_domain: int,
    tx_hash: str,
    *,
    interval: float,
    deadline: float,
    index: int,
    accept: Callable[[IrisMessage], bool],
    sleep: Callable[[float], Awaitable[Any]],
    clock: Callable[[], float],
    max_interval: float | None,
) -> IrisMessage:
    give_up = clock() + deadline
    cap = max_interval if max_interval is not None else max(interval * 8, interval)
    backoff = interval
    last: IrisMessage | None = None
    reason = "not indexed yet"
    while True:
        try:
            found = await client.messages(src_domain, tx_hash)
        except IrisRateLimited as exc:
            wait = exc.retry_after
            reason = str(exc)
        except IrisUnavailable as exc:
            wait = backoff
            backoff = min(cap, backoff * 2)
            reason = str(exc)
        else:
            backoff = interval
            wait = interval
            if len(found) > index:
                last = found[index]
                if accept(last):
                    return last
                reason = f"status {last.status}" + (
                    f" ({last.delay_reason})" if last.delay_reason else ""
                )
            else:
                reason = "not indexed yet"
        remaining = give_up - clock()
        if remaining <= 0:
            raise AttestationTimeout(
                f"no attestation for {tx_hash} (domain {src_domain}) within {deadline:g}s: {reason}",
                last,
            )
        log.debug("attestation for %s not ready (%s); next poll in %.1fs", tx_hash, reason, wait)
        await sleep(min(wait, remaining))


async def wait_for_attestation(
    client: IrisClient,
    src_domain: int,
    tx_hash: str,
    *,
    interval: float,
    deadline: float,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    index: int = 0,
    max_interval: float | None = None,
) -> IrisMessage:
    """Poll until the ``index``-th message of the burn is ``complete``.

    Polls every ``interval`` seconds while Iris has not indexed the burn or the message
    is pending; on 5xx/timeouts backs off exponentially (up to ``max_interval``, default
    8 × interval); on 429 waits ``Retry-After``. Raises :class:`AttestationTimeout`
    after ``deadline`` seconds (``last`` says how far it got, e.g. ``insufficient_fee``),
    and lets other :class:`IrisError` (a 4xx, a malformed answer) through at once.
    """
    return await _poll(
        client,
        src_domain,
        tx_hash,
        interval=interval,
        deadline=deadline,
        index=index,
        accept=lambda m: m.complete,
        sleep=sleep,
        clock=clock,
        max_interval=max_interval,
    )


async def reattest_and_wait(
    client: IrisClient,
    src_domain: int,
    tx_hash: str,
    nonce_hex: str,
    *,
    destination_block: int,
    interval: float,
    deadline: float,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    index: int = 0,
    margin: int = 1,
) -> IrisMessage:
    """``POST /v2/reattest/{nonce}``, then poll until the message is complete again with
    an expiration beyond ``destination_block + margin`` (or none)."""
    from .message import attestation_expired

    await client.reattest(nonce_hex)
    return await _poll(
        client,
        src_domain,
        tx_hash,
        interval=interval,
        deadline=deadline,
        index=index,
        accept=lambda m: (
            m.complete
            and not attestation_expired(m.expiration_block or 0, destination_block, margin)
        ),
        sleep=sleep,
        clock=clock,
        max_interval=None,
    )

"""A fake of Circle's Iris API v2 that watches local source chains and signs burns.

It answers like the real service (``reference/rebalancing.md`` §10.6, §10.7): 404 until it
has seen the burn transaction on the source chain (it reads the receipt by tx hash when
asked), then ``pending_confirmations`` for ``pending_seconds``, then ``complete`` with the
**attested** message: a full 32-byte nonce (keccak of domain, tx hash and log index, always
above 2**64), ``finalityThresholdExecuted`` 1000 (fast; a requested minimum ≤ 1000) or 2000
(standard), ``feeExecuted`` from its fee table (ceil(amount × bps / 10000); when ``maxFee`` is
below the fast fee it falls back to standard with fee 0 and ``delayReason``
``"insufficient_fee"``) and ``expirationBlock`` = the **destination** chain's height +
``expiration_window`` (None: 0, never expires), signed with the test attester keys over the
raw keccak256 of the message (r‖s‖v, v 27/28, ascending signer order).
``POST /v2/reattest/{nonce}`` signs again later with a fresh expiration. The fee endpoint
reads the same table, so the fee a client caps and the fee charged agree.

Switches for tests: ``down`` (503), ``rate_limited`` (429 with ``Retry-After:
retry_after``), ``delay`` (seconds before each answer); ``requests`` counts requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import attrs
from aiohttp import web
from eth_account import Account
from eth_utils.crypto import keccak

from st0x_liquidity.cctp.contracts import MESSAGE_SENT_TOPIC, message_sent_all
from st0x_liquidity.cctp.message import (
    FINALITY_FAST,
    FINALITY_STANDARD,
    CctpMessage,
    CctpMessageError,
    attest,
    decode_message,
    encode_message,
    max_fee_units,
    to_bytes32,
)

DEFAULT_FEES: dict[int, dict[int, Decimal]] = {
    0: {FINALITY_FAST: Decimal(1), FINALITY_STANDARD: Decimal(0)},
    6: {FINALITY_FAST: Decimal("1.3"), FINALITY_STANDARD: Decimal(0)},
}
"""Fee tiers (bps) by source domain: Circle's table lists 1 bp from Ethereum, 1.3 from Base."""
ATTESTER_KEY = "0x" + keccak(text="st0x-devnet-cctp-attester-0").hex()
"""The test attester's key (a fixed, public test value; the fake Iris signs with it by
default, and the devnet enables it on its message transmitters)."""
FALLBACK_FEES = {FINALITY_FAST: Decimal(1), FINALITY_STANDARD: Decimal(0)}


def sign_attestation(message: bytes, keys: Sequence[str]) -> bytes:
    """Attester signatures over keccak256(message), concatenated in ascending signer order."""
    digest = keccak(message)
    signed = sorted(
        (
            int(Account.from_key(key).address, 16),
            bytes(Account.unsafe_sign_hash(digest, key).signature),
        )
        for key in keys
    )
    return b"".join(sig for _, sig in signed)


def message_nonce(domain: int, tx_hash: str, log_index: int) -> str:
    """A full 32-byte nonce, deterministic per (domain, tx, log); never fits 64 bits."""
    seed = domain.to_bytes(4, "big") + bytes.fromhex(tx_hash[2:]) + log_index.to_bytes(32, "big")
    nonce = keccak(seed)
    while int.from_bytes(nonce, "big") < 2**64:
        nonce = keccak(nonce)
    return "0x" + nonce.hex()


@attrs.define
class _Source:
    domain: int
    rpc_url: str
    message_transmitter: str


@attrs.define
class _Entry:
    """One MessageSent the fake has seen, and its attestation once signed."""

    source_domain: int
    tx_hash: str
    raw: CctpMessage
    nonce: str
    finality: int
    fee: int
    delay_reason: str | None
    ready_at: float
    message: bytes | None = None
    attestation: bytes | None = None
    expiration_block: int = 0


def _num(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


class FakeIris:
    def __init__(
        self,
        *,
        attester_keys: Sequence[str],
        fees: Mapping[tuple[int, int], Mapping[int, Decimal]] | None = None,
        pending_seconds: float = 0.0,
        standard_pending_seconds: float | None = None,
        expiration_window: int | None = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attester_keys = list(attester_keys)
        self.fees: dict[tuple[int, int], Mapping[int, Decimal]] = dict(fees or {})
        self.pending_seconds = pending_seconds
        self.standard_pending_seconds = standard_pending_seconds
        self.expiration_window = expiration_window
        self.clock = clock
        self.down = False
        self.rate_limited = False
        self.retry_after = 1.0
        self.delay = 0.0
        self.requests = 0
        self.paths: list[str] = []
        self.chains: dict[int, _Source] = {}
        self._entries: dict[tuple[int, str], list[_Entry]] = {}
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    # -- setup ------------------------------------------------------------------------

    def add_chain(self, domain: int, rpc_url: str, message_transmitter: str) -> None:
        """Watch ``message_transmitter`` on this domain (source) and read its height (destination)."""
        self.chains[domain] = _Source(domain, rpc_url, message_transmitter.lower())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> FakeIris:
        app = web.Application(middlewares=[self._switches])
        app.router.add_get("/v2/messages/{domain}", self._messages)
        app.router.add_get("/v2/burn/USDC/fees/{src}/{dst}", self._fees)
        app.router.add_post("/v2/reattest/{nonce}", self._reattest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- policy -----------------------------------------------------------------------

    def fee_table(self, src: int, dst: int) -> Mapping[int, Decimal]:
        return self.fees.get((src, dst)) or DEFAULT_FEES.get(src) or FALLBACK_FEES

    def sign(self, message: bytes) -> bytes:
        return sign_attestation(message, self.attester_keys)

    def _decide(self, raw: CctpMessage) -> tuple[int, int, str | None]:
        """(finalityThresholdExecuted, feeExecuted, delayReason) as Iris would pick them."""
        table = self.fee_table(raw.source_domain, raw.destination_domain)
        amount, cap = raw.burn.amount, raw.burn.max_fee
        if raw.min_finality_threshold <= FINALITY_FAST:
            fee = max_fee_units(amount, table.get(FINALITY_FAST, Decimal(0)))
            if fee <= cap:
                return FINALITY_FAST, fee, None
            return FINALITY_STANDARD, 0, "insufficient_fee"
        fee = max_fee_units(amount, table.get(FINALITY_STANDARD, Decimal(0)))
        return FINALITY_STANDARD, fee if fee <= cap else 0, None

    # -- chain access -----------------------------------------------------------------

    async def _rpc(self, domain: int, method: str, params: list[Any]) -> Any:
        source = self.chains.get(domain)
        if source is None:
            raise web.HTTPBadRequest(text=json.dumps({"error": f"unknown domain {domain}"}))
        assert self._session is not None
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with self._session.post(source.rpc_url, json=body) as response:
            data = await response.json(content_type=None)
        if data.get("error"):
            raise RuntimeError(f"{method}: {data['error']}")
        return data.get("result")

    async def _ingest(self, domain: int, tx_hash: str) -> list[_Entry]:
        key = (domain, tx_hash)
        if key in self._entries:
            return self._entries[key]
        receipt = await self._rpc(domain, "eth_getTransactionReceipt", [tx_hash])
        if not isinstance(receipt, dict) or receipt.get("status") != "0x1":
            return []
        source = self.chains[domain]
        entries = []
        logs = [
            log
            for log in receipt.get("logs", [])
            if log.get("topics")
            and log["topics"][0].lower() == MESSAGE_SENT_TOPIC
            and log.get("address", "").lower() == source.message_transmitter
        ]
        payloads = message_sent_all(receipt, source.message_transmitter)
        for log, payload in zip(logs, payloads, strict=True):
            try:
                raw = decode_message(payload)
            except CctpMessageError:
                continue  # not a burn message: the fake signs only token transfers
            finality, fee, delay_reason = self._decide(raw)
            wait = self.pending_seconds
            if finality == FINALITY_STANDARD and self.standard_pending_seconds is not None:
                wait = self.standard_pending_seconds
            entries.append(
                _Entry(
                    source_domain=domain,
                    tx_hash=tx_hash,
                    raw=raw,
                    nonce=message_nonce(domain, tx_hash, int(log["logIndex"], 16)),
                    finality=finality,
                    fee=fee,
                    delay_reason=delay_reason,
                    ready_at=self.clock() + wait,
                )
            )
        if entries:
            self._entries[key] = entries
        return entries

    async def _sign_if_ready(self, entry: _Entry) -> None:
        if entry.attestation is not None or self.clock() < entry.ready_at:
            return
        expiration = 0
        if self.expiration_window is not None:
            height = int(await self._rpc(entry.raw.destination_domain, "eth_blockNumber", []), 16)
            expiration = height + self.expiration_window
        attested = attest(
            entry.raw,
            nonce=entry.nonce,
            finality_threshold_executed=entry.finality,
            fee_executed=entry.fee,
            expiration_block=expiration,
        )
        entry.expiration_block = expiration
        entry.message = encode_message(attested)
        entry.attestation = self.sign(entry.message)

    # -- HTTP -------------------------------------------------------------------------

    @web.middleware
    async def _switches(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        self.paths.append(request.path)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            return web.json_response({"error": "Service Unavailable"}, status=503)
        if self.rate_limited:
            return web.json_response(
                {"error": "Too Many Requests"},
                status=429,
                headers={"Retry-After": f"{self.retry_after:g}"},
            )
        response: web.StreamResponse = await handler(request)
        return response

    def _entry_json(self, entry: _Entry) -> dict[str, Any]:
        if entry.attestation is None or entry.message is None:
            return {
                "message": "0x",
                "eventNonce": None,
                "attestation": "PENDING",
                "decodedMessage": None,
                "cctpVersion": 2,
                "status": "pending_confirmations",
                "delayReason": entry.delay_reason,
            }
        msg = decode_message(entry.message)
        burn = msg.burn
        return {
            "message": "0x" + entry.message.hex(),
            "eventNonce": msg.nonce,
            "attestation": "0x" + entry.attestation.hex(),
            "decodedMessage": {
                "sourceDomain": str(msg.source_domain),
                "destinationDomain": str(msg.destination_domain),
                "nonce": msg.nonce,
                "sender": msg.sender,
                "recipient": msg.recipient,
                "destinationCaller": msg.destination_caller,
                "minFinalityThreshold": str(msg.min_finality_threshold),
                "finalityThresholdExecuted": str(msg.finality_threshold_executed),
                "messageBody": "0x" + entry.message[148:].hex(),
                "decodedMessageBody": {
                    "burnToken": burn.burn_token_address,
                    "mintRecipient": burn.mint_recipient_address,
                    "amount": str(burn.amount),
                    "messageSender": burn.message_sender_address,
                    "maxFee": str(burn.max_fee),
                    "feeExecuted": str(burn.fee_executed),
                    "expirationBlock": str(burn.expiration_block),
                    "hookData": "0x" + burn.hook_data.hex(),
                },
            },
            "cctpVersion": 2,
            "status": "complete",
            "delayReason": entry.delay_reason,
        }

    async def _messages(self, request: web.Request) -> web.Response:
        try:
            domain = int(request.match_info["domain"])
        except ValueError:
            return web.json_response({"error": "Invalid source domain"}, status=400)
        tx_hash = request.query.get("transactionHash", "").lower()
        nonce = request.query.get("nonce")
        async with self._lock:
            if tx_hash:
                if len(tx_hash) != 66 or not tx_hash.startswith("0x"):
                    return web.json_response({"error": "Invalid transaction hash"}, status=400)
                entries = await self._ingest(domain, tx_hash)
            elif nonce:
                entries = [e for e in self._all() if e.source_domain == domain and e.nonce == nonce]
            else:
                return web.json_response(
                    {"error": "transactionHash or nonce is required"}, status=400
                )
            if not entries:
                return web.json_response({"error": "Message not found"}, status=404)
            for entry in entries:
                await self._sign_if_ready(entry)
            return web.json_response({"messages": [self._entry_json(e) for e in entries]})

    async def _fees(self, request: web.Request) -> web.Response:
        try:
            src, dst = int(request.match_info["src"]), int(request.match_info["dst"])
        except ValueError:
            return web.json_response({"error": "Invalid domain"}, status=400)
        table = self.fee_table(src, dst)
        return web.json_response(
            [{"finalityThreshold": t, "minimumFee": _num(fee)} for t, fee in sorted(table.items())]
        )

    async def _reattest(self, request: web.Request) -> web.Response:
        try:
            nonce = to_bytes32(request.match_info["nonce"])
        except CctpMessageError:
            return web.json_response({"error": "Invalid nonce"}, status=400)
        async with self._lock:
            for entry in self._all():
                if entry.nonce == nonce:
                    entry.attestation = None
                    entry.message = None
                    entry.ready_at = self.clock() + self.pending_seconds
                    return web.json_response(
                        {
                            "message": "Re-attestation successfully requested for nonce.",
                            "nonce": nonce,
                        }
                    )
        return web.json_response({"error": "Message not found"}, status=404)

    def _all(self) -> list[_Entry]:
        return [e for entries in self._entries.values() for e in entries]

    def attested(self) -> list[tuple[str, str]]:
        """(tx hash, nonce) of every message seen so far."""
        return [(e.tx_hash, e.nonce) for e in self._all()]


# -- command line ---------------------------------------------------------------------


def _chain_arg(text: str) -> tuple[int, str, str]:
    try:
        domain, rest = text.split("=", 1)
        url, transmitter = rest.rsplit(",", 1)
        return int(domain), url, transmitter
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected DOMAIN=RPC_URL,MESSAGE_TRANSMITTER, got {text!r}"
        ) from None


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeIris(
        attester_keys=args.attester_key or [ATTESTER_KEY],
        pending_seconds=args.pending_seconds,
        expiration_window=None if args.expiration_window < 0 else args.expiration_window,
    )
    for domain, url, transmitter in args.chain:
        fake.add_chain(domain, url, transmitter)
    await fake.start(args.port)
    print(fake.url, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m st0x_testing.fake_iris")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--chain", type=_chain_arg, action="append", default=[], help="DOMAIN=RPC_URL,MT_ADDRESS"
    )
    parser.add_argument("--attester-key", action="append", help="default: the devnet test key")
    parser.add_argument("--pending-seconds", type=float, default=0.0)
    parser.add_argument(
        "--expiration-window", type=int, default=1000, help="blocks (negative: never expires)"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""USDC steps across CCTP V2: approve and burn, attestation, relay, re-attestation.

The burn is one prepared transaction (found again by its hash after a crash);
the relay first asks the destination's ``usedNonces`` (anyone may have relayed
the message) and re-attests an expired attestation instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from eth_utils.crypto import keccak

from ..cctp.contracts import (
    MESSAGE_RECEIVED_TOPIC,
    NONCE_USED,
    decode_uint,
    deposit_for_burn,
    mint_and_withdraw,
    receive_message,
    used_nonces,
)
from ..cctp.message import AmountTooSmall, attestation_expired, check_amount, max_fee_units
from ..domain.numbers import EXACT, fmt
from .chain import ChainClient
from .events import Moved
from .inventory import USDC, MoveKind, Venue
from .operations import StepFailed
from .state import TO_ONCHAIN, OperationState
from .usdc_base import UsdcBase, _hex, _now, _unhex
from .usdc_flow import burned_amount, from_units, usdc_units

log = logging.getLogger(__name__)

ON, OFF = Venue.ONCHAIN.value, Venue.OFFCHAIN.value


class BridgeSteps(UsdcBase):
    """Bridge steps (either direction): approve_burn, burn, attest, relay, re-attestation."""

    async def _step_approve_burn(self, state: OperationState) -> None:
        src, _dst, r = self._route(state)
        units = usdc_units(burned_amount(state))
        await self._approve(
            state,
            step="approve_burn",
            chain=src,
            token=r["src_usdc"],
            spender=r["messenger"],
            units=units,
        )

    async def _iris(self, what: str, call: Any) -> Any:
        """Ask the attestation service, backing off while it is down or rate limited."""
        delay = self.cctp.attestation_interval
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.poll_timeout
        while True:
            try:
                return await call()
            except Exception as exc:
                if loop.time() > deadline:
                    raise StepFailed(f"{what}: attestation service unreachable: {exc}") from None
                log.warning("%s failed, retrying in %ss: %s", what, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _step_burn(self, state: OperationState) -> None:
        src, dst, r = self._route(state)
        amount = burned_amount(state)
        units = usdc_units(amount)
        cctp = self.cctp
        extra: dict[str, str] = {}
        data = ""
        if "burn" not in state.intended:
            iris = self.iris_api
            tiers = await self._iris(
                "fee quote", lambda: iris.fees(r["src_domain"], r["dst_domain"])
            )
            tier = next(
                (t for t in tiers if int(t.finality_threshold) == cctp.finality_threshold), None
            )
            if tier is None:
                raise StepFailed(f"no fee quoted for finality {cctp.finality_threshold}")
            bps = Decimal(tier.minimum_fee_bps)
            if bps > cctp.max_fee_bps:
                raise StepFailed(f"Circle's fee {bps} bps is above max_fee_bps {cctp.max_fee_bps}")
            cap = max_fee_units(units, bps)
            try:
                check_amount(units, cap)
            except AmountTooSmall as exc:
                raise StepFailed(str(exc)) from None
            if state.kind == TO_ONCHAIN:
                recipient = self.wallet
            else:
                custodian = self.usdc_custodian
                recipient = await self._retrying("deposit address", custodian.deposit_address)
            head = int(await dst.rpc("eth_blockNumber", []), 16)
            extra = {
                "recipient": recipient,
                "max_fee_units": str(cap),
                "fee_bps": fmt(bps),
                "dst_from_block": str(head),
            }
            data = deposit_for_burn(
                units, r["dst_domain"], recipient, r["src_usdc"], cap, cctp.finality_threshold
            )
        receipt = await self._transaction(
            state, "burn", r["messenger"], data, chain=src, extra=extra
        )
        intent = state.intended["burn"]
        await self._done(
            state,
            "burn",
            {
                "tx_hash": receipt["transactionHash"],
                "units": str(units),
                "recipient": intent["recipient"],
                "at": _now().isoformat(),
            },
        )

    async def _await_attestation(
        self, state: OperationState, previous: str | None = None
    ) -> dict[str, str]:
        """Poll Iris by burn tx hash until the message is attested (and, after a
        re-attestation, attested anew), with backoff, a slow warning and a deadline."""
        _src, _dst, r = self._route(state)
        cctp = self.cctp
        iris = self.iris_api
        burn = state.done["burn"]
        started = datetime.fromisoformat(burn["at"])
        warned = False
        while True:
            messages = await self._iris(
                "attestation", lambda: iris.messages(r["src_domain"], burn["tx_hash"])
            )
            m = messages[0] if messages else None
            if (
                m is not None
                and m.status == "complete"
                and m.message
                and m.attestation
                and _hex(m.attestation) != previous
            ):
                return {
                    "message": _hex(m.message),
                    "attestation": _hex(m.attestation),
                    "nonce": str(m.nonce),
                    "expiration_block": str(int(m.expiration_block or 0)),
                    "fee_executed": str(int(m.fee_executed or 0)),
                }
            waited = (_now() - started).total_seconds()
            if waited > cctp.attestation_deadline:
                raise StepFailed(f"no attestation within {cctp.attestation_deadline}s")
            if waited > cctp.fast_window and not warned:
                warned = True
                log.warning(
                    "operation %s: burn %s not attested after %.0fs (%s): slower than a fast "
                    "transfer, still waiting",
                    state.operation_id,
                    burn["tx_hash"],
                    waited,
                    getattr(m, "delay_reason", None) or (m.status if m else "not indexed"),
                )
            await asyncio.sleep(cctp.attestation_interval)

    async def _step_attest(self, state: OperationState) -> None:
        await self._done(state, "attest", await self._await_attestation(state))

    async def _nonce_used(self, chain: ChainClient, transmitter: str, nonce: str) -> bool:
        raw = await chain.call(transmitter, used_nonces(nonce))
        return decode_uint(_hex(raw)) == NONCE_USED

    async def _find_mint(
        self, state: OperationState, chain: ChainClient, transmitter: str, nonce: str
    ) -> dict[str, Any]:
        """The receipt of whichever transaction received ``nonce`` (ours or a third party's)."""
        start = int(state.intended.get("burn", {}).get("dst_from_block", "0") or 0)
        logs = await chain.rpc(
            "eth_getLogs",
            [
                {
                    "address": transmitter,
                    "fromBlock": hex(start),
                    "toBlock": "latest",
                    "topics": [MESSAGE_RECEIVED_TOPIC, None, nonce],
                }
            ],
        )
        if not logs:
            raise StepFailed(f"nonce {nonce} is used but no MessageReceived log was found")
        receipt = await chain.receipt(str(logs[0]["transactionHash"]))
        if receipt is None:
            raise StepFailed(f"no receipt for the mint {logs[0]['transactionHash']}")
        return receipt

    async def _reattest(self, state: OperationState) -> None:
        attest = state.done["attest"]
        log.warning(
            "operation %s: attestation of nonce %s expired; asking Circle to re-attest",
            state.operation_id,
            attest["nonce"],
        )
        iris = self.iris_api
        await self._iris("re-attestation", lambda: iris.reattest(attest["nonce"]))
        fresh = await self._await_attestation(state, previous=attest["attestation"])
        await self._done(state, "attest", {**fresh, "reattested": "1"})

    async def _step_relay(self, state: OperationState) -> None:
        _src, dst, r = self._route(state)
        attest = state.done["attest"]
        nonce, transmitter = attest["nonce"], r["transmitter"]
        tag = _hex(keccak(_unhex(attest["attestation"])))
        if await self._nonce_used(dst, transmitter, nonce):
            receipt = await self._find_mint(state, dst, transmitter, nonce)
        else:
            head = int(await dst.rpc("eth_blockNumber", []), 16)
            if attestation_expired(int(attest["expiration_block"]), head):
                await self._reattest(state)
                return  # the run loop comes back to relay with the new attestation
            stale = state.intended.get("relay", {}).get("attestation") not in (None, tag)
            if stale:
                del state.intended["relay"]
            try:
                receipt = await self._transaction(
                    state,
                    "relay",
                    transmitter,
                    receive_message(_unhex(attest["message"]), _unhex(attest["attestation"])),
                    chain=dst,
                    extra={"attestation": tag},
                )
            except StepFailed as exc:
                if "expired" in str(exc).lower():
                    await self._reattest(state)
                    return
                if await self._nonce_used(dst, transmitter, nonce):
                    receipt = await self._find_mint(state, dst, transmitter, nonce)
                else:
                    raise
        mint = mint_and_withdraw(receipt)
        if mint is None:
            raise StepFailed(f"no MintAndWithdraw in {receipt['transactionHash']}")
        got, fee = from_units(mint.amount_units), from_units(mint.fee_units)
        burned = burned_amount(state)
        op = state.operation_id
        if state.kind == TO_ONCHAIN:
            moves = [Moved(op, USDC, ON, MoveKind.SETTLE.value, fee)] if fee else []
        else:
            moves = [
                Moved(op, USDC, ON, MoveKind.SETTLE.value, burned),
                Moved(op, USDC, OFF, MoveKind.ARRIVE.value, got),
            ]
        by = str(receipt.get("from", "")).lower()
        await self._done(
            state,
            "relay",
            {
                "tx_hash": receipt["transactionHash"],
                "received": fmt(got),
                "fee": fmt(fee),
                "recipient": mint.recipient,
                "relayer": by,
                "cost_cctp": fmt(EXACT.subtract(burned, got)),
            },
            moves,
        )

"""Funds in limbo: burned by a failed operation and minted later by anyone.

Checked by the service once per snapshot and by ``rebalance resume``; the mint
is read from the destination's logs and the in-flight amount put where it
landed.
"""

from __future__ import annotations

import logging

from ..cctp.contracts import mint_and_withdraw
from ..domain.numbers import EXACT, fmt
from .events import CostRecorded, Moved, StepDone
from .inventory import USDC, MoveKind, Venue
from .operations import list_operations
from .state import TO_ONCHAIN, USDC_KINDS
from .usdc_base import _now
from .usdc_bridge import BridgeSteps
from .usdc_flow import burned_amount, costs, from_units, limbo

log = logging.getLogger(__name__)

ON, OFF = Venue.ONCHAIN.value, Venue.OFFCHAIN.value


class LimboLanding(BridgeSteps):
    """Landing funds in limbo: land, land_all (on the bridge's nonce and mint lookups)."""

    async def land(self, operation_id: str) -> bool:
        """Record where the funds of a failed, burned-not-minted operation landed, if they did.

        The message may be relayed later by anyone (an operator with Circle's
        attestation, a third-party relayer): once the destination's ``usedNonces``
        says so, the mint is read from its logs and the in-flight amount is put
        where it is (the wallet on Base, or the broker for a move to offchain).
        """
        state = await self.load(operation_id)
        if (
            state.kind not in USDC_KINDS
            or state.ended is None
            or not limbo(state)
            or "landed" in state.done
        ):
            return False
        _src, dst, r = self._route(state)
        attest = state.done.get("attest")
        nonce = attest["nonce"] if attest else None
        if nonce is None:
            iris = self.iris_api
            messages = await iris.messages(r["src_domain"], state.done["burn"]["tx_hash"])
            if not messages or not messages[0].nonce:
                return False
            nonce = str(messages[0].nonce)
        if not await self._nonce_used(dst, r["transmitter"], nonce):
            return False
        receipt = await self._find_mint(state, dst, r["transmitter"], nonce)
        mint = mint_and_withdraw(receipt)
        if mint is None:
            return False
        got, fee = from_units(mint.amount_units), from_units(mint.fee_units)
        burned = burned_amount(state)
        op = state.operation_id
        if state.kind == TO_ONCHAIN:  # in the wallet on Base
            moves = [Moved(op, USDC, ON, MoveKind.SETTLE.value, fee)] if fee else []
            moves.append(Moved(op, USDC, ON, MoveKind.RELEASE.value, got))
        else:  # at the broker's deposit address: the broker's (as USDC) once credited
            moves = [
                Moved(op, USDC, ON, MoveKind.SETTLE.value, burned),
                Moved(op, USDC, OFF, MoveKind.CREDIT.value, got),
            ]
        details = {
            "tx_hash": str(receipt["transactionHash"]),
            "received": fmt(got),
            "nonce": nonce,
            "cost_cctp": fmt(EXACT.subtract(burned, got)),
        }
        state.done["landed"] = details
        found = costs(state)
        await self._append(
            state,
            [
                StepDone(op, "landed", details, _now()),
                *moves,
                CostRecorded(op, USDC, found, _now()),
            ],
        )
        log.warning(
            "operation %s: the %s USDC in limbo landed (mint %s, %s received)",
            op,
            fmt(burned),
            details["tx_hash"],
            details["received"],
        )
        return True

    async def land_all(self) -> list[str]:
        """Try :meth:`land` on every failed USDC operation whose funds are in limbo."""
        landed = []
        for state in await list_operations(self.log):
            in_limbo = state.kind in USDC_KINDS and state.ended is not None and limbo(state)
            if in_limbo and await self.land(state.operation_id):
                landed.append(state.operation_id)
        return landed

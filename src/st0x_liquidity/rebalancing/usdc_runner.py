"""USDC operations (broker <-> Base vault over CCTP V2) on the durable operation log.

The steps and where the funds are after each are in usdc_flow.py. This is the
imperative shell, in mixins on usdc_base.UsdcBase: usdc_broker.py, usdc_bridge.py,
usdc_vault.py and usdc_limbo.py; this module wires them and decides requests
and endings. Each step asks the world before acting when its intent is
already recorded (a conversion by its client order id, a withdrawal in the
broker's transfer list, a transaction by its prepared hash, a relay by the
destination's ``usedNonces``), so a crash at any point resumes into exactly one
conversion, one withdrawal, one burn, one mint and one deposit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal

from .events import CostRecorded, RebalancingEvent
from .inventory import USDC, Venue
from .operations import StepFailed
from .state import TO_ONCHAIN, USDC_KINDS, OperationState
from .usdc_base import FundsAtBroker, IrisApi, _now
from .usdc_bridge import BridgeSteps
from .usdc_broker import BrokerSteps
from .usdc_flow import (
    AmountError,
    check_fee_cap,
    costs,
    limbo,
    usdc_failure_moves,
    usdc_units,
    where,
)
from .usdc_limbo import LimboLanding
from .usdc_vault import VaultSteps

log = logging.getLogger(__name__)

__all__ = ["FundsAtBroker", "IrisApi", "UsdcRunner"]


class UsdcRunner(BrokerSteps, VaultSteps, LimboLanding, BridgeSteps):
    """The operation runner with the two USDC kinds (needs ``[rebalancing.cctp]``)."""

    def _target(self, kind: str, asset: str, quantity: Decimal) -> tuple[str, str, Venue]:
        if kind not in USDC_KINDS:
            return super()._target(kind, asset, quantity)
        cctp = self.config.cctp
        if cctp is None or not self.usdc_ready:
            raise ValueError("USDC moves need [rebalancing.cctp] and a broker with USDC custody")
        if asset != USDC:
            raise ValueError(f"{kind} moves USDC, not {asset}")
        check_fee_cap(usdc_units(quantity), cctp.max_fee_bps)
        if kind == TO_ONCHAIN and quantity < cctp.min_withdrawal:
            raise AmountError(
                f"{quantity} USDC is below the broker's minimum withdrawal {cctp.min_withdrawal}"
            )
        source = Venue.OFFCHAIN if kind == TO_ONCHAIN else Venue.ONCHAIN
        return cctp.base_usdc.lower(), cctp.usdc_vault_id, source

    async def end(
        self,
        state: OperationState,
        outcome: str,
        reason: str | None,
        moves: Sequence[RebalancingEvent],
    ) -> None:
        found = costs(state) if state.kind in USDC_KINDS else {}
        if found:  # in the same append as the end
            moves = [*moves, CostRecorded(state.operation_id, USDC, found, _now())]
        await super().end(state, outcome, reason, moves)
        if state.kind in USDC_KINDS and limbo(state):
            log.error("ALERT operation %s: %s", state.operation_id, where(state))

    async def _fail(self, state: OperationState, step: str, exc: StepFailed) -> None:
        if state.kind not in USDC_KINDS:
            await super()._fail(state, step, exc)
            return
        reason = f"{step}: {exc}"
        if isinstance(exc, FundsAtBroker) and "convert" in state.done:
            try:
                await self._unwind(state)
            except StepFailed as unwind_failed:
                reason += f"; selling the USDC back failed: {unwind_failed}"
        await self.end(state, "failed", f"{reason}; {where(state)}", usdc_failure_moves(state))

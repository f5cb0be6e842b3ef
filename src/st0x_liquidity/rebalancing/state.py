"""An operation's state folded from its events, and the step tables of each kind.

Shared by :mod:`.operations` (the runner) and :mod:`.usdc_flow` (the pure USDC
rules), which both need it; it imports neither, so they need not import each
other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import attrs

from .events import (
    OperationEnded,
    OperationRequested,
    RebalancingEvent,
    StepDone,
    StepIntended,
)

MINT_STEPS = ("mint_request", "mint_poll", "approve", "deposit")
REDEEM_STEPS = ("withdraw", "transfer", "detect", "redeem_poll")
TO_ONCHAIN = "usdc_to_onchain"
TO_OFFCHAIN = "usdc_to_offchain"
USDC_KINDS = (TO_ONCHAIN, TO_OFFCHAIN)
TO_ONCHAIN_STEPS = (
    "convert",
    "whitelist",
    "broker_withdraw",
    "withdraw_poll",
    "approve_burn",
    "burn",
    "attest",
    "relay",
    "approve_vault",
    "vault_deposit",
)
TO_OFFCHAIN_STEPS = (
    "vault_withdraw",
    "approve_burn",
    "burn",
    "attest",
    "relay",
    "detect_deposit",
    "convert",
)
USDC_STEPS = {TO_ONCHAIN: TO_ONCHAIN_STEPS, TO_OFFCHAIN: TO_OFFCHAIN_STEPS}


@attrs.define
class OperationState:
    operation_id: str
    kind: str
    asset: str
    quantity: Decimal
    origin: str
    requested_at: datetime
    token: str = ""
    vault_id: str = ""
    length: int = 0
    intended: dict[str, dict[str, str]] = attrs.field(factory=dict)
    done: dict[str, dict[str, str]] = attrs.field(factory=dict)
    ended: OperationEnded | None = None

    @property
    def steps(self) -> tuple[str, ...]:
        if self.kind in USDC_STEPS:
            return USDC_STEPS[self.kind]
        return MINT_STEPS if self.kind == "mint" else REDEEM_STEPS

    @property
    def next_step(self) -> str | None:
        if self.ended is not None:
            return None
        return next((s for s in self.steps if s not in self.done), None)

    @property
    def status(self) -> str:
        if self.ended is not None:
            return self.ended.outcome
        step = self.next_step
        if step is None:
            return "finishing"
        return f"{step}:{'intended' if step in self.intended else 'next'}"

    @property
    def moved_quantity(self) -> Decimal:
        """For a redemption: what was actually withdrawn (may be less than asked)."""
        done = self.done.get("withdraw")
        return Decimal(done["quantity"]) if done else self.quantity


def fold_operation(events: Sequence[RebalancingEvent]) -> OperationState | None:
    state: OperationState | None = None
    for event in events:
        if isinstance(event, OperationRequested):
            state = OperationState(
                event.operation_id,
                event.kind,
                event.asset,
                event.quantity,
                event.origin,
                event.at,
                event.token,
                event.vault_id,
            )
        if state is None:
            continue
        state.length += 1
        if isinstance(event, StepIntended):
            state.intended[event.step] = event.details
        elif isinstance(event, StepDone):
            state.done[event.step] = event.details
        elif isinstance(event, OperationEnded):
            state.ended = event
    return state

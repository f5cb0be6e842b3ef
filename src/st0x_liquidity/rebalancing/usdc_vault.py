"""USDC steps at the Base vault: withdraw before a move to offchain, approve and
deposit after a move to onchain (each one prepared transaction)."""

from __future__ import annotations

from decimal import Decimal

from ..domain.numbers import EXACT, ZERO, fmt
from .chain import deposit3, deposited_units, vault_id_bytes, withdraw3, withdrawn_units
from .events import Moved, RebalancingEvent
from .inventory import USDC, MoveKind, Venue
from .operations import StepFailed
from .state import OperationState
from .usdc_base import UsdcBase
from .usdc_flow import from_units, usdc_units

ON, OFF = Venue.ONCHAIN.value, Venue.OFFCHAIN.value


class VaultSteps(UsdcBase):
    """Vault steps on Base: vault_withdraw, approve_vault, vault_deposit."""

    async def _step_vault_withdraw(self, state: OperationState) -> None:
        token, vault = state.token, vault_id_bytes(state.vault_id)
        receipt = await self._transaction(
            state, "vault_withdraw", self.config.orderbook, withdraw3(token, vault, state.quantity)
        )
        units = withdrawn_units(receipt, self.wallet, token)
        if units is None:
            raise StepFailed("no WithdrawV2 in the withdraw receipt")
        got = from_units(units)
        if got <= ZERO:
            raise StepFailed("the USDC vault had nothing to withdraw")
        op = state.operation_id
        extra: list[RebalancingEvent] = []
        if got < state.quantity:
            short = EXACT.subtract(state.quantity, got)
            extra.append(Moved(op, USDC, ON, MoveKind.RELEASE.value, short))
        await self._done(
            state,
            "vault_withdraw",
            {"tx_hash": receipt["transactionHash"], "units": str(units), "quantity": fmt(got)},
            extra,
        )

    async def _step_approve_vault(self, state: OperationState) -> None:
        units = usdc_units(Decimal(state.done["relay"]["received"]))
        await self._approve(
            state,
            step="approve_vault",
            chain=self.chain,
            token=state.token,
            spender=self.config.orderbook,
            units=units,
        )

    async def _step_vault_deposit(self, state: OperationState) -> None:
        amount = Decimal(state.done["relay"]["received"])
        units = usdc_units(amount)
        token, vault = state.token, vault_id_bytes(state.vault_id)
        receipt = await self._transaction(
            state, "vault_deposit", self.config.orderbook, deposit3(token, vault, amount)
        )
        got = deposited_units(receipt, self.wallet, token)
        if got != units:
            raise StepFailed(f"DepositV2 moved {got} units, expected {units}")
        await self._complete(
            state,
            "vault_deposit",
            {"tx_hash": receipt["transactionHash"], "units": str(units)},
            [Moved(state.operation_id, USDC, ON, MoveKind.RELEASE.value, amount)],
        )

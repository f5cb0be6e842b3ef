"""USDC steps at the Base vault: withdraw before a move to offchain, approve and
deposit after a move to onchain (each one prepared transaction). With a vaultless
USDC "vault" (IRaindexV6, vault id 0) the withdrawal and the deposit send nothing:
the USDC is the wallet's, where the burn takes it from and the mint puts it."""

from __future__ import annotations

from decimal import Decimal

from ..domain.numbers import EXACT, ZERO, fmt
from .chain import deposited_units, vault_id_bytes, withdrawn_units
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
        proof: dict[str, str]
        if self.vaultless(vault):  # V6 vault 0: the USDC is in the wallet the burn spends from
            units: int | None = await self.wallet_withdrawal(token, state.quantity, 6)
            proof = {"vaultless": "wallet"}
        else:
            data = self.withdraw_call(token, vault, state.quantity)
            receipt = await self._transaction(state, "vault_withdraw", self.config.orderbook, data)
            units = withdrawn_units(receipt, self.wallet, token)
            proof = {"tx_hash": receipt["transactionHash"]}
        if units is None:
            raise StepFailed("no WithdrawV2 in the withdraw receipt")
        got = from_units(units)
        if got <= ZERO:
            where = "wallet" if "vaultless" in proof else "vault"
            raise StepFailed(f"the USDC {where} had nothing to withdraw")
        op = state.operation_id
        extra: list[RebalancingEvent] = []
        if got < state.quantity:
            short = EXACT.subtract(state.quantity, got)
            extra.append(Moved(op, USDC, ON, MoveKind.RELEASE.value, short))
        await self._done(
            state,
            "vault_withdraw",
            {**proof, "units": str(units), "quantity": fmt(got)},
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
        if self.vaultless(vault):  # minted into the wallet the vaultless orders trade from
            details = {"vaultless": "wallet", "units": str(units)}
        else:
            data = self.deposit_call(token, vault, amount)
            receipt = await self._transaction(state, "vault_deposit", self.config.orderbook, data)
            got = deposited_units(receipt, self.wallet, token)
            if got != units:
                raise StepFailed(f"DepositV2 moved {got} units, expected {units}")
            details = {"tx_hash": receipt["transactionHash"], "units": str(units)}
        await self._complete(
            state,
            "vault_deposit",
            details,
            [Moved(state.operation_id, USDC, ON, MoveKind.RELEASE.value, amount)],
        )

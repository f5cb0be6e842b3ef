"""Mint and redemption as durable, resumable state machines in the rebalancing log.

Each operation is the stream ``op:<id>``. Before every external effect the
intent is appended (``StepIntended``, carrying everything needed to repeat the
*same* effect: the idempotency key of a mint request, the signed bytes and hash
of a transaction); after it, the established outcome (``StepDone``). On resume
an intended-but-not-done step asks the world (the request by key, the receipt
by hash, the account nonce) instead of doing anything new.

Mint: ``mint_request`` -> ``mint_poll`` -> ``approve`` -> ``deposit``.
Redemption: ``withdraw`` -> ``transfer`` -> ``detect`` -> ``redeem_poll``.

The orderbook's vault calls follow ``[evm] orderbook_interface``: ``deposit3``/``withdraw3``
on V5, ``deposit4``/``withdraw4`` on V6. On V6 a vault id of 0 is *vaultless*: the order
trades from the owner's wallet, so ``deposit`` sends nothing (the minted tokens are already
in the wallet) and ``withdraw`` only reads the wallet's balance (the transfer to the
issuer then moves the tokens straight from the wallet).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..domain.numbers import EXACT, ZERO, fmt
from ..domain.symbols import Symbol
from ..errors import AmbiguousBrokerError, FinalBrokerError
from ..protocols import Custodian, TokenizationRequest
from ..raindex.floats import scale_units
from .chain import (
    ChainClient,
    PreparedTx,
    TransactionReplaced,
    TransactionReverted,
    deposited_units,
    erc20_approve,
    erc20_transfer,
    is_vaultless,
    vault_deposit,
    vault_id_bytes,
    vault_withdraw,
    withdrawn_units,
)
from .config import RebalancingConfig
from .events import (
    Moved,
    OperationEnded,
    OperationRequested,
    RebalancingEvent,
    StepDone,
    StepIntended,
    op_stream,
)
from .inventory import InventoryBook, MoveKind, Venue, vault_for
from .log import ConcurrentAppendError, RebalancingLog
from .state import USDC_KINDS, OperationState, fold_operation
from .usdc_flow import usdc_failure_moves

log = logging.getLogger(__name__)

TOKEN_DECIMALS = 18
CRASH_ENV = "ST0X_REBALANCING_CRASH_AT"
"""Test hook: ``<step>:<intended|effect|done>`` SIGKILLs this process at that point."""


class QuantityError(ValueError):
    pass


def to_units(quantity: Decimal, decimals: int = TOKEN_DECIMALS) -> int:
    """Exact base units; a remainder is an error before anything is sent."""
    scaled = quantity.scaleb(decimals, context=EXACT)
    if scaled != scaled.to_integral_value() or scaled <= 0:
        raise QuantityError(f"{quantity} is not a positive whole number of 1e-{decimals} units")
    return int(scaled)


def failure_moves(state: OperationState) -> list[Moved]:
    """Where the in-flight amount actually is after the steps done so far."""
    if state.kind in USDC_KINDS:
        return usdc_failure_moves(state)
    op, asset, q = state.operation_id, state.asset, state.quantity
    if state.kind == "mint":
        if "mint_poll" not in state.done:  # shares still at the broker
            return [Moved(op, asset, Venue.OFFCHAIN.value, MoveKind.RELEASE.value, q)]
        return [Moved(op, asset, Venue.ONCHAIN.value, MoveKind.RELEASE.value, q)]  # in the wallet
    w = state.moved_quantity
    if "transfer" not in state.done:  # in the vault or the wallet: still ours, onchain
        return [Moved(op, asset, Venue.ONCHAIN.value, MoveKind.RELEASE.value, w)]
    # sent to the issuer's redemption wallet: no longer ours onchain
    return [Moved(op, asset, Venue.ONCHAIN.value, MoveKind.SETTLE.value, w)]


class StepFailed(Exception):
    """The operation cannot continue: ends it as failed with this reason."""


def _now() -> datetime:
    return datetime.now(UTC)


class OperationRunner:
    def __init__(
        self,
        log_: RebalancingLog,
        config: RebalancingConfig,
        chain: ChainClient,
        custodian: Custodian,
        *,
        retry_delay: float = 1.0,
        orderbook_interface: str = "v5",
    ) -> None:
        self.log = log_
        self.config = config
        self.chain = chain
        self.custodian = custodian
        self.retry_delay = retry_delay
        self.orderbook_interface = orderbook_interface
        """``[evm] orderbook_interface``: which vault calls (and whether vault 0 is vaultless)."""
        self.core_position = 0
        self.book: InventoryBook | None = None
        """The inventory fold, for discovered vaults (set by the service or the CLI)."""

    def vault(self, asset: str) -> tuple[str, str] | str:
        pinned = {a: (p.token.lower(), p.vault_id) for a, p in self.config.vaults.items()}
        return vault_for(asset, pinned, self.book or InventoryBook())

    # -- records ----------------------------------------------------------------------

    async def load(self, operation_id: str) -> OperationState:
        items = await self.log.read(stream=op_stream(operation_id))
        state = fold_operation([e for _, _, _, e in items])
        if state is None:
            raise KeyError(f"no operation {operation_id}")
        return state

    async def _append(self, state: OperationState, events: list[RebalancingEvent]) -> None:
        state.length = await self.log.append(
            op_stream(state.operation_id),
            events,
            core_position=self.core_position,
            expected=state.length,
        )

    async def request(self, kind: str, asset: str, quantity: Decimal, origin: str) -> str:
        """Record a new operation and reserve its quantity at the source venue."""
        token, vault_id, venue = self._target(kind, asset, quantity)
        operation_id = uuid.uuid4().hex[:16]
        await self.log.append(
            op_stream(operation_id),
            [
                OperationRequested(
                    operation_id, kind, asset, quantity, origin, _now(), token, vault_id
                ),
                Moved(operation_id, asset, venue.value, MoveKind.RESERVE.value, quantity),
            ],
            core_position=self.core_position,
            expected=0,
        )
        log.info("%s %s %s requested as %s (%s)", kind, quantity, asset, operation_id, origin)
        return operation_id

    def _target(self, kind: str, asset: str, quantity: Decimal) -> tuple[str, str, Venue]:
        """(token, vault id, source venue) of a new operation; ValueError if it cannot run."""
        if kind not in ("mint", "redeem"):
            raise ValueError(f"unknown operation kind {kind!r}")
        to_units(quantity)
        vault = self.vault(asset)
        if isinstance(vault, str):
            raise ValueError(vault)
        token, vault_id = vault
        return token, vault_id, Venue.OFFCHAIN if kind == "mint" else Venue.ONCHAIN

    async def end(
        self,
        state: OperationState,
        outcome: str,
        reason: str | None,
        moves: Sequence[RebalancingEvent],
    ) -> None:
        await self._append(
            state,
            [*moves, OperationEnded(state.operation_id, state.asset, outcome, reason, _now())],
        )
        log.log(
            logging.INFO if outcome == "completed" else logging.WARNING,
            "operation %s (%s %s %s) %s%s",
            state.operation_id,
            state.kind,
            state.quantity,
            state.asset,
            outcome,
            f": {reason}" if reason else "",
        )

    async def abandon(self, operation_id: str, reason: str) -> None:
        state = await self.load(operation_id)
        if state.ended is not None:
            raise ValueError(f"operation {operation_id} already ended ({state.ended.outcome})")
        await self.end(state, "abandoned", reason, failure_moves(state))

    # -- driving ----------------------------------------------------------------------

    async def run(self, operation_id: str) -> OperationState:
        """Drive the operation to a terminal event (resuming wherever it stands)."""
        while True:
            state = await self.load(operation_id)
            step = state.next_step
            if step is None:
                return state
            try:
                await getattr(self, f"_step_{step}")(state)
            except StepFailed as exc:
                state = await self.load(operation_id)
                if state.ended is None:
                    await self._fail(state, step, exc)
            except ConcurrentAppendError:
                self._forget_nonces()  # a prepared tx of ours was never sent
                await asyncio.sleep(0.05)  # someone else moved it: reload and continue

    def _forget_nonces(self) -> None:
        self.chain._next_nonce = None

    async def _fail(self, state: OperationState, step: str, exc: StepFailed) -> None:
        await self.end(state, "failed", f"{step}: {exc}", failure_moves(state))

    def _crash_point(self, step: str, phase: str) -> None:
        if os.environ.get(CRASH_ENV) == f"{step}:{phase}":
            os.kill(os.getpid(), signal.SIGKILL)

    async def _intend(self, state: OperationState, step: str, details: dict[str, str]) -> None:
        await self._append(state, [StepIntended(state.operation_id, step, details, _now())])
        state.intended[step] = details
        self._crash_point(step, "intended")

    async def _done(
        self,
        state: OperationState,
        step: str,
        details: dict[str, str],
        extra: Sequence[RebalancingEvent] = (),
    ) -> None:
        self._crash_point(step, "effect")
        await self._append(state, [StepDone(state.operation_id, step, details, _now()), *extra])
        state.done[step] = details
        self._crash_point(step, "done")

    def _pin(self, state: OperationState) -> tuple[str, bytes]:
        """The vault chosen when the operation was requested (fixed for its life)."""
        return state.token, vault_id_bytes(state.vault_id)

    @property
    def wallet(self) -> str:
        return self.config.wallet or self.chain.address

    def vaultless(self, vault_id: bytes) -> bool:
        """V6 vault id 0: the order's tokens are the owner's wallet, not a vault."""
        return is_vaultless(self.orderbook_interface, vault_id)

    def deposit_call(self, token: str, vault_id: bytes, amount: Decimal) -> str:
        return vault_deposit(token, vault_id, amount, self.orderbook_interface)

    def withdraw_call(self, token: str, vault_id: bytes, amount: Decimal) -> str:
        return vault_withdraw(token, vault_id, amount, self.orderbook_interface)

    async def wallet_withdrawal(self, token: str, quantity: Decimal, decimals: int) -> int:
        """A "withdrawal" of a vaultless order: nothing moves; what the wallet holds of
        ``quantity`` (base units) is what the next step sends on."""
        held = await self.chain.erc20_balance(token, self.wallet)
        return min(to_units(quantity, decimals), held)

    async def _transaction(
        self,
        state: OperationState,
        step: str,
        to: str,
        data: str,
        *,
        chain: ChainClient | None = None,
        extra: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send (or, after a crash, find or re-send) the one transaction of ``step``.

        ``chain`` defaults to the vault's chain; ``extra`` goes into the intent too.
        """
        chain = chain or self.chain
        if step in state.intended and "raw" in state.intended[step]:
            tx = PreparedTx.from_details(state.intended[step])
            await chain.broadcast(tx)
        else:
            try:
                tx = await chain.prepare(to, data)
            except TransactionReverted as exc:
                raise StepFailed(exc.reason) from None
            await self._intend(state, step, {**tx.to_details(), **(extra or {})})
            await chain.broadcast(tx)
        try:
            return await chain.settle(tx)
        except TransactionReverted as exc:
            raise StepFailed(f"reverted: {exc.reason} (tx {exc.tx_hash})") from None
        except TransactionReplaced as exc:
            raise StepFailed(str(exc)) from None

    async def _retrying(self, what: str, call: Any) -> Any:
        """Repeat a read-only or idempotent issuer call until it answers (or refuses).

        After ``poll_timeout`` of failures the step fails, unless one of them was
        ambiguous (the request may have been created): an outcome that is not
        established is never turned into a failure, so it keeps asking.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.poll_timeout
        ambiguous = False
        while True:
            try:
                return await call()
            except FinalBrokerError as exc:
                raise StepFailed(str(exc)) from None
            except Exception as exc:
                ambiguous = ambiguous or isinstance(exc, AmbiguousBrokerError)
                if loop.time() > deadline and not ambiguous:
                    raise StepFailed(f"{what}: issuer unreachable: {exc}") from None
                log.warning("%s failed, retrying: %s", what, exc)
                await asyncio.sleep(self.retry_delay)

    async def _poll(self, what: str, request_id: str) -> TokenizationRequest:
        while True:
            found = await self._retrying(
                what, lambda: self.custodian.tokenization_request(request_id)
            )
            if found is not None and found.status in ("completed", "rejected"):
                return found  # type: ignore[no-any-return]
            await asyncio.sleep(self.config.poll_interval)

    # -- mint -------------------------------------------------------------------------

    async def _step_mint_request(self, state: OperationState) -> None:
        key = f"st0x-{state.operation_id}"
        if "mint_request" not in state.intended:
            await self._intend(
                state, "mint_request", {"idempotency_key": key, "wallet": self.wallet}
            )
        wallet = state.intended["mint_request"]["wallet"]
        request: TokenizationRequest = await self._retrying(
            "mint request",
            lambda: self.custodian.request_mint(Symbol(state.asset), state.quantity, wallet, key),
        )
        await self._done(state, "mint_request", {"request_id": request.request_id})

    async def _step_mint_poll(self, state: OperationState) -> None:
        request_id = state.done["mint_request"]["request_id"]
        found = await self._poll("mint status", request_id)
        if found.status == "rejected":
            raise StepFailed(f"mint request {request_id} rejected by the issuer")
        if not found.tx_hash:
            raise StepFailed(f"mint request {request_id} completed without a tx hash")
        op, asset, q = state.operation_id, state.asset, state.quantity
        await self._done(
            state,
            "mint_poll",
            {"tx_hash": found.tx_hash},
            [
                Moved(op, asset, Venue.OFFCHAIN.value, MoveKind.SETTLE.value, q),
                Moved(op, asset, Venue.ONCHAIN.value, MoveKind.ARRIVE.value, q),
            ],
        )

    async def _step_approve(self, state: OperationState) -> None:
        token, _ = self._pin(state)
        units = to_units(state.quantity)
        if "approve" not in state.intended:
            allowance = await self.chain.erc20_allowance(token, self.wallet, self.config.orderbook)
            if allowance >= units:
                await self._done(state, "approve", {"allowance": str(allowance)})
                return
        receipt = await self._transaction(
            state, "approve", token, erc20_approve(self.config.orderbook, 2**256 - 1)
        )
        await self._done(state, "approve", {"tx_hash": receipt["transactionHash"]})

    async def _step_deposit(self, state: OperationState) -> None:
        token, vault = self._pin(state)
        units = to_units(state.quantity)
        if self.vaultless(vault):  # the minted tokens are in the wallet the order trades from
            details = {"vaultless": "wallet", "units": str(units)}
        else:
            data = self.deposit_call(token, vault, state.quantity)
            receipt = await self._transaction(state, "deposit", self.config.orderbook, data)
            got = deposited_units(receipt, self.wallet, token)
            if got != units:
                raise StepFailed(f"DepositV2 moved {got} units, expected {units}")
            details = {"tx_hash": receipt["transactionHash"], "units": str(units)}
        op, asset, q = state.operation_id, state.asset, state.quantity
        await self._done(
            state,
            "deposit",
            details,
            [
                Moved(op, asset, Venue.ONCHAIN.value, MoveKind.RELEASE.value, q),
                OperationEnded(op, asset, "completed", None, _now()),
            ],
        )

    # -- redemption -------------------------------------------------------------------

    async def _step_withdraw(self, state: OperationState) -> None:
        token, vault = self._pin(state)
        proof: dict[str, str]
        if self.vaultless(vault):  # the tokens are already in the wallet: nothing to call
            units: int | None = await self.wallet_withdrawal(token, state.quantity, TOKEN_DECIMALS)
            proof = {"vaultless": "wallet"}
        else:
            data = self.withdraw_call(token, vault, state.quantity)
            receipt = await self._transaction(state, "withdraw", self.config.orderbook, data)
            units = withdrawn_units(receipt, self.wallet, token)
            proof = {"tx_hash": receipt["transactionHash"]}
        if units is None:
            raise StepFailed("no WithdrawV2 in the withdraw receipt")
        got = scale_units(units, TOKEN_DECIMALS)
        if got <= ZERO:
            where = "wallet" if "vaultless" in proof else "vault"
            raise StepFailed(f"the {where} had nothing to withdraw")
        op, asset = state.operation_id, state.asset
        extra: list[RebalancingEvent] = []
        if got < state.quantity:  # the rest never left the vault
            short = EXACT.subtract(state.quantity, got)
            extra.append(Moved(op, asset, Venue.ONCHAIN.value, MoveKind.RELEASE.value, short))
        await self._done(
            state, "withdraw", {**proof, "units": str(units), "quantity": fmt(got)}, extra
        )

    async def _step_transfer(self, state: OperationState) -> None:
        token, _ = self._pin(state)
        if not self.config.redemption_wallet:
            raise StepFailed("rebalancing.redemption_wallet is not configured")
        units = int(state.done["withdraw"]["units"])
        receipt = await self._transaction(
            state, "transfer", token, erc20_transfer(self.config.redemption_wallet, units)
        )
        await self._done(state, "transfer", {"tx_hash": receipt["transactionHash"]})

    async def _step_detect(self, state: OperationState) -> None:
        tx_hash = state.done["transfer"]["tx_hash"]
        while True:
            found = await self._retrying(
                "redemption detection", lambda: self.custodian.find_redemption(tx_hash)
            )
            if found is not None:
                break
            await asyncio.sleep(self.config.poll_interval)
        await self._done(state, "detect", {"request_id": found.request_id})

    async def _step_redeem_poll(self, state: OperationState) -> None:
        request_id = state.done["detect"]["request_id"]
        found = await self._poll("redemption status", request_id)
        w = state.moved_quantity
        if found.status == "rejected":
            raise StepFailed(
                f"redemption {request_id} rejected by the issuer; {w} tokens are at the "
                "redemption wallet (resolve with the issuer)"
            )
        op, asset = state.operation_id, state.asset
        await self._done(
            state,
            "redeem_poll",
            {"status": found.status},
            [
                Moved(op, asset, Venue.ONCHAIN.value, MoveKind.SETTLE.value, w),
                Moved(op, asset, Venue.OFFCHAIN.value, MoveKind.CREDIT.value, w),
                OperationEnded(op, asset, "completed", None, _now()),
            ],
        )


async def list_operations(log_: RebalancingLog) -> list[OperationState]:
    items = await log_.read()
    by_stream: dict[str, list[RebalancingEvent]] = {}
    for _, _, stream, event in items:
        if stream.startswith("op:"):
            by_stream.setdefault(stream, []).append(event)
    states = [fold_operation(events) for events in by_stream.values()]
    return sorted((s for s in states if s is not None), key=lambda s: s.requested_at)

"""USDC operations (broker <-> Base vault over CCTP V2) on the durable operation log.

The steps and where the funds are after each are in usdc_flow.py. This is the
imperative shell: each step asks the world before acting when its intent is
already recorded (a conversion by its client order id, a withdrawal in the
broker's transfer list, a transaction by its prepared hash, a relay by the
destination's ``usedNonces``), so a crash at any point resumes into exactly one
conversion, one withdrawal, one burn, one mint and one deposit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, cast

from eth_utils.crypto import keccak

from ..cctp.contracts import (
    MESSAGE_RECEIVED_TOPIC,
    NONCE_USED,
    TRANSFER_TOPIC,
    decode_uint,
    deposit_for_burn,
    mint_and_withdraw,
    receive_message,
    used_nonces,
)
from ..cctp.message import AmountTooSmall, attestation_expired, check_amount, max_fee_units
from ..domain.numbers import EXACT, ZERO, fmt
from ..errors import AmbiguousBrokerError, FinalBrokerError
from ..protocols import CashConversion, ConversionCanceller, UsdcCustodian, WalletTransfer
from .chain import (
    ChainClient,
    deposit3,
    deposited_units,
    erc20_approve,
    vault_id_bytes,
    withdraw3,
    withdrawn_units,
)
from .config import RebalancingConfig
from .events import CostRecorded, Moved, OperationEnded, RebalancingEvent, StepDone
from .inventory import USDC, MoveKind, Venue
from .log import RebalancingLog
from .operations import OperationRunner, OperationState, StepFailed, list_operations
from .usdc_config import CctpConfig
from .usdc_flow import (
    CONVERSION_ENDED,
    TO_ONCHAIN,
    USDC_KINDS,
    AmountError,
    burned_amount,
    check_fee_cap,
    claimed_transfers,
    conversion_filled,
    costs,
    find_deposit,
    find_withdrawal,
    from_units,
    limbo,
    received,
    spent,
    transfer_regression,
    usdc_failure_moves,
    usdc_units,
    where,
)

log = logging.getLogger(__name__)

ON, OFF = Venue.ONCHAIN.value, Venue.OFFCHAIN.value


class IrisApi(Protocol):
    """What the flows use of Circle's attestation service (st0x_liquidity.cctp.iris)."""

    async def fees(self, source_domain: int, destination_domain: int) -> Sequence[Any]: ...

    async def messages(self, source_domain: int, tx_hash: str) -> Sequence[Any]: ...

    async def reattest(self, nonce_hex: str) -> Any: ...

    async def close(self) -> None: ...


class FundsAtBroker(StepFailed):
    """The USDC bought for this operation cannot leave the broker: sell it back."""


def _now() -> datetime:
    return datetime.now(UTC)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


class UsdcRunner(OperationRunner):
    """The operation runner with the two USDC kinds (needs ``[rebalancing.cctp]``)."""

    def __init__(
        self,
        log_: RebalancingLog,
        config: RebalancingConfig,
        chain: ChainClient,
        custodian: Any,
        *,
        eth: ChainClient | None = None,
        iris: IrisApi | None = None,
        retry_delay: float = 1.0,
    ) -> None:
        super().__init__(log_, config, chain, custodian, retry_delay=retry_delay)
        self.eth = eth
        self.iris = iris

    @property
    def usdc_ready(self) -> bool:
        return (
            self.config.cctp is not None
            and self.eth is not None
            and self.iris is not None
            and isinstance(self.custodian, UsdcCustodian)
        )

    @property
    def cctp(self) -> CctpConfig:
        if self.config.cctp is None:
            raise StepFailed("[rebalancing.cctp] is not configured")
        return self.config.cctp

    @property
    def usdc_custodian(self) -> UsdcCustodian:
        return cast(UsdcCustodian, self.custodian)

    @property
    def ethereum(self) -> ChainClient:
        if self.eth is None:
            raise StepFailed("no Ethereum chain client ([rebalancing.cctp] ethereum_rpc_url)")
        return self.eth

    @property
    def iris_api(self) -> IrisApi:
        if self.iris is None:
            raise StepFailed("no attestation service client ([rebalancing.cctp] iris_url)")
        return self.iris

    def _forget_nonces(self) -> None:
        super()._forget_nonces()
        if self.eth is not None:
            self.eth._next_nonce = None

    async def close(self) -> None:
        await self.chain.close()
        if self.eth is not None:
            await self.eth.close()
        if self.iris is not None:
            await self.iris.close()

    # -- requests ---------------------------------------------------------------------

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

    # -- endings ----------------------------------------------------------------------

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

    async def _complete(
        self, state: OperationState, step: str, details: dict[str, str], moves: list[Moved]
    ) -> None:
        """The last step: its result, the moves, the costs and the end in one append."""
        state.done[step] = details
        found = costs(state)
        op = state.operation_id
        extra: list[RebalancingEvent] = [*moves]
        if found:
            extra.append(CostRecorded(op, USDC, found, _now()))
        extra.append(OperationEnded(op, USDC, "completed", None, _now()))
        del state.done[step]
        await self._done(state, step, details, extra)
        total = sum(found.values(), ZERO)
        log.info(
            "operation %s (%s %s USDC) completed, cost %s", op, state.kind, state.quantity, total
        )

    # -- broker -----------------------------------------------------------------------

    async def _conversion(
        self, state: OperationState, step: str, side: str, quantity: Decimal
    ) -> CashConversion:
        """Place (or find again, by client order id) a conversion and wait until it ends."""
        cid = f"st0x-{state.operation_id}-{step}"
        custodian = self.usdc_custodian
        placed: CashConversion | None = None
        if step not in state.intended:
            await self._intend(
                state, step, {"client_order_id": cid, "side": side, "quantity": fmt(quantity)}
            )
        else:  # resumed: the order may exist already (convert is idempotent anyway)
            placed = await self._retrying("conversion status", lambda: custodian.conversion(cid))
        if placed is None:
            placed = await self._retrying(
                f"{side} USDC", lambda: custodian.convert(side, quantity, cid)
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cctp.conversion_timeout
        current: CashConversion | None = placed
        while current is None or current.status not in CONVERSION_ENDED:
            if loop.time() > deadline:
                current = await self._cancel_late(cid, current)
                break
            await asyncio.sleep(self.cctp.conversion_interval)
            current = await self._retrying("conversion status", lambda: custodian.conversion(cid))
        if conversion_filled(current) is None:
            raise StepFailed(
                f"conversion {cid} {current.status}"
                + (f": {current.reason}" if current.reason else "")
            )
        if current.status != "filled":
            log.warning(
                "conversion %s %s after filling %s of %s: going on with the filled part",
                cid,
                current.status,
                fmt(cast(Decimal, current.filled_quantity)),
                fmt(current.quantity),
            )
        return current

    async def _cancel_late(self, cid: str, current: CashConversion | None) -> CashConversion:
        """A conversion past its deadline: cancel it, then read what it became.

        A fill that beat the cancel is returned (whole or partial) so the caller
        accounts for it; nothing filled is a failure with nothing converted. A
        custodian without ``cancel_conversion`` leaves the order open (and says so).
        """
        timeout = self.cctp.conversion_timeout
        custodian = self.custodian
        status = current.status if current is not None else "not found"
        if not isinstance(custodian, ConversionCanceller):
            raise StepFailed(
                f"conversion {cid} not filled within {timeout}s ({status}; this broker cannot "
                "cancel it, so it may still fill: check the broker)"
            )
        log.warning("conversion %s not filled within %ss (%s): cancelling it", cid, timeout, status)
        after: CashConversion | None = await self._retrying(
            "conversion cancel", lambda: custodian.cancel_conversion(cid)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while after is None or after.status not in CONVERSION_ENDED:
            if loop.time() > deadline:
                raise StepFailed(
                    f"conversion {cid} not filled within {timeout}s and still "
                    f"{after.status if after else 'not found'} after the cancel "
                    "(it may still fill: check the broker)"
                )
            await asyncio.sleep(self.cctp.conversion_interval)
            after = await self._retrying(
                "conversion status", lambda: self.usdc_custodian.conversion(cid)
            )
        if conversion_filled(after) is None:
            raise StepFailed(
                f"conversion {cid} not filled within {timeout}s: cancelled, nothing converted"
            )
        return after

    async def _step_convert(self, state: OperationState) -> None:
        op = state.operation_id
        if state.kind == TO_ONCHAIN:
            c = await self._conversion(state, "convert", "buy", state.quantity)
            filled = cast(Decimal, c.filled_quantity)
            dollars = spent(c)
            extra = EXACT.subtract(dollars, state.quantity)
            moves = [Moved(op, USDC, OFF, MoveKind.SETTLE.value, state.quantity)]
            if extra != ZERO:
                moves.append(Moved(op, USDC, OFF, MoveKind.DEBIT.value, extra))
            moves.append(Moved(op, USDC, OFF, MoveKind.ARRIVE.value, filled))
            await self._done(
                state,
                "convert",
                {
                    "order_id": c.order_id,
                    "filled": fmt(filled),
                    "price": fmt(c.filled_price) if c.filled_price is not None else "",
                    "fees": fmt(c.fees),
                    "spent": fmt(dollars),
                    "cost_conversion": fmt(EXACT.subtract(dollars, filled)),
                },
                moves,
            )
            return
        credited = Decimal(state.done["detect_deposit"]["credited"])
        c = await self._conversion(state, "convert", "sell", credited)
        sold = cast(Decimal, c.filled_quantity)
        dollars = received(c)
        unsold = EXACT.subtract(credited, sold)
        moves = [
            Moved(op, USDC, OFF, MoveKind.SETTLE.value, credited),
            Moved(op, USDC, OFF, MoveKind.CREDIT.value, dollars),
        ]
        if unsold > ZERO:  # a sale cancelled part-filled: the rest stays USDC at the broker
            moves.append(Moved(op, USDC, OFF, MoveKind.CREDIT.value, unsold))
            log.warning(
                "operation %s: %s USDC left unsold at the broker (sell USDCUSD)", op, fmt(unsold)
            )
        await self._complete(
            state,
            "convert",
            {
                "order_id": c.order_id,
                "filled": fmt(sold),
                "price": fmt(c.filled_price) if c.filled_price is not None else "",
                "fees": fmt(c.fees),
                "received": fmt(dollars),
                "unsold": fmt(unsold) if unsold > ZERO else "",
                "cost_conversion": fmt(EXACT.subtract(sold, dollars)),
            },
            moves,
        )

    async def _unwind(self, state: OperationState) -> None:
        """Sell back the USDC a failed withdrawal left at the broker (failure path only)."""
        held = Decimal(state.done["convert"]["filled"])
        c = await self._conversion(state, "unwind", "sell", held)
        sold = cast(Decimal, c.filled_quantity)
        dollars = received(c)
        unsold = EXACT.subtract(held, sold)
        await self._done(
            state,
            "unwind",
            {
                "received": fmt(dollars),
                "unsold": fmt(unsold) if unsold > ZERO else "",
                "cost_conversion": fmt(EXACT.subtract(sold, dollars)),
            },
        )

    async def _step_whitelist(self, state: OperationState) -> None:
        custodian = self.usdc_custodian
        status = await self._retrying("whitelist", lambda: custodian.whitelist_status(self.wallet))
        if status != "APPROVED":
            raise FundsAtBroker(
                f"the wallet {self.wallet} is {'not whitelisted' if status is None else status} "
                "for USDC withdrawals at the broker"
            )
        await self._done(state, "whitelist", {"status": str(status)})

    async def _step_broker_withdraw(self, state: OperationState) -> None:
        amount = Decimal(state.done["convert"]["filled"])
        custodian = self.usdc_custodian
        if "broker_withdraw" not in state.intended:
            await self._intend(
                state,
                "broker_withdraw",
                {"address": self.wallet, "amount": fmt(amount), "after": _now().isoformat()},
            )
            found = None
        else:
            found = await self._find_withdrawal(state)
        while found is None:
            try:
                found = await custodian.withdraw_usdc(
                    amount, state.intended["broker_withdraw"]["address"]
                )
            except FinalBrokerError as exc:
                raise FundsAtBroker(f"withdrawal refused: {exc}") from None
            except Exception as exc:
                kind = "ambiguous" if isinstance(exc, AmbiguousBrokerError) else "failed"
                log.warning("USDC withdrawal request %s (%s); looking for it first", kind, exc)
                await asyncio.sleep(self.retry_delay)
                found = await self._find_withdrawal(state)
        await self._done(
            state,
            "broker_withdraw",
            {"transfer_id": found.transfer_id, "status": found.status},
        )

    async def _find_withdrawal(self, state: OperationState) -> WalletTransfer | None:
        intent = state.intended["broker_withdraw"]
        custodian = self.usdc_custodian
        transfers = await self._retrying("transfer list", custodian.transfers)
        others = await list_operations(self.log)
        return find_withdrawal(
            transfers,
            intent["address"],
            Decimal(intent["amount"]),
            datetime.fromisoformat(intent["after"]),
            claimed_transfers(others, state.operation_id),
        )

    async def _transfer(self, what: str, pick: Any, funds: str) -> WalletTransfer:
        """Poll the broker's transfer list until ``pick`` finds a COMPLETE or FAILED one.

        A status regression (reference §6.1) is logged as an ALERT and polling goes
        on: the broker still holds or moves the funds, and ending the step would put
        them in the model where they are not (``funds`` says where they are, for
        the alert and the timeout reason).
        """
        custodian = self.usdc_custodian
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cctp.transfer_timeout
        last: str | None = None
        regressed: str | None = None
        while True:
            transfers = await self._retrying("transfer list", custodian.transfers)
            found: WalletTransfer | None = pick(transfers)
            if found is not None:
                problem = transfer_regression(last, found.status)
                if problem is not None:
                    regressed = problem
                    log.error(
                        "ALERT %s: %s at the broker (%s); still polling: %s",
                        what,
                        problem,
                        found.transfer_id,
                        funds,
                    )
                last = found.status
                if found.status.upper() in ("COMPLETE", "FAILED"):
                    return found
            if loop.time() > deadline:
                raise StepFailed(
                    f"{what} not complete within {self.cctp.transfer_timeout}s "
                    f"({found.status if found else 'not listed'}"
                    + (f"; {regressed}" if regressed else "")
                    + f"): {funds}"
                )
            await asyncio.sleep(self.cctp.transfer_interval)

    async def _step_withdraw_poll(self, state: OperationState) -> None:
        tid = state.done["broker_withdraw"]["transfer_id"]
        t = await self._transfer(
            f"withdrawal {tid}",
            lambda ts: next((x for x in ts if x.transfer_id == tid), None),
            f"the USDC is in the broker's withdrawal {tid} (out of its balance); "
            "if it completes it reaches the wallet on Ethereum",
        )
        if t.status.upper() == "FAILED":
            raise FundsAtBroker(f"the broker's withdrawal {tid} FAILED")
        sent = Decimal(state.done["convert"]["filled"])
        units = await self._arrived(t)
        got = from_units(units)
        op = state.operation_id
        await self._done(
            state,
            "withdraw_poll",
            {
                "tx_hash": t.tx_hash or "",
                "received": fmt(got),
                "network_fee": fmt(t.network_fee),
                "fees": fmt(t.fees),
                "cost_broker": fmt(EXACT.subtract(sent, got)),
            },
            [
                Moved(op, USDC, OFF, MoveKind.SETTLE.value, sent),
                Moved(op, USDC, ON, MoveKind.ARRIVE.value, got),
            ],
        )

    async def _arrived(self, t: WalletTransfer) -> int:
        """USDC units the withdrawal's transaction gave our wallet on Ethereum."""
        net = EXACT.subtract(EXACT.subtract(t.amount, t.fees), t.network_fee)
        if not t.tx_hash:
            log.warning("withdrawal %s has no tx hash; assuming %s arrived", t.transfer_id, net)
            return usdc_units(net)
        receipt = await self.ethereum.receipt(t.tx_hash)
        if receipt is None:
            raise StepFailed(f"no receipt on Ethereum for the withdrawal tx {t.tx_hash}")
        token = self.cctp.ethereum_usdc.lower()
        me = "0x" + "0" * 24 + self.wallet[2:].lower()
        units = 0
        for entry in receipt.get("logs", []):
            topics = [str(x).lower() for x in entry.get("topics", [])]
            if (
                str(entry.get("address", "")).lower() == token
                and len(topics) == 3
                and topics[0] == TRANSFER_TOPIC
                and topics[2] == me
            ):
                units += int(entry["data"], 16)
        if units == 0:
            raise StepFailed(f"the withdrawal tx {t.tx_hash} sent no USDC to {self.wallet}")
        return units

    # -- vault ------------------------------------------------------------------------

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

    async def _approve(
        self,
        state: OperationState,
        *,
        step: str,
        chain: ChainClient,
        token: str,
        spender: str,
        units: int,
    ) -> None:
        if step not in state.intended:
            allowance = await chain.erc20_allowance(token, self.wallet, spender)
            if allowance >= units:
                await self._done(state, step, {"allowance": str(allowance)})
                return
        receipt = await self._transaction(
            state, step, token, erc20_approve(spender, 2**256 - 1), chain=chain
        )
        await self._done(state, step, {"tx_hash": receipt["transactionHash"]})

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

    # -- CCTP -------------------------------------------------------------------------

    def _route(self, state: OperationState) -> tuple[ChainClient, ChainClient, dict[str, Any]]:
        """(source chain, destination chain, addresses and domains) of the bridge."""
        c = self.cctp
        if state.kind == TO_ONCHAIN:
            return (
                self.ethereum,
                self.chain,
                {
                    "src_domain": c.ethereum_domain,
                    "dst_domain": c.base_domain,
                    "src_usdc": c.ethereum_usdc,
                    "messenger": c.ethereum_token_messenger,
                    "transmitter": c.base_message_transmitter,
                },
            )
        return (
            self.chain,
            self.ethereum,
            {
                "src_domain": c.base_domain,
                "dst_domain": c.ethereum_domain,
                "src_usdc": c.base_usdc,
                "messenger": c.base_token_messenger,
                "transmitter": c.ethereum_message_transmitter,
            },
        )

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

    async def _step_detect_deposit(self, state: OperationState) -> None:
        tx_hash = state.done["relay"]["tx_hash"]
        t = await self._transfer(
            f"the broker's deposit of {tx_hash}",
            lambda ts: find_deposit(ts, tx_hash),
            f"the USDC was minted to the broker's deposit address (tx {tx_hash}) and is "
            "not credited yet",
        )
        if t.status.upper() == "FAILED":
            raise StepFailed(f"the broker's deposit {t.transfer_id} of {tx_hash} FAILED")
        minted = Decimal(state.done["relay"]["received"])
        credited = EXACT.subtract(t.amount, t.fees)
        fee = EXACT.subtract(minted, credited)
        moves = []
        if fee != ZERO:
            moves.append(Moved(state.operation_id, USDC, OFF, MoveKind.SETTLE.value, fee))
        await self._done(
            state,
            "detect_deposit",
            {
                "transfer_id": t.transfer_id,
                "credited": fmt(credited),
                "fees": fmt(t.fees),
                "cost_broker": fmt(fee),
            },
            moves,
        )

    # -- funds in limbo -----------------------------------------------------------------

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

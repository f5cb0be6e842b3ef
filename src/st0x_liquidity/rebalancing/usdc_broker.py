"""USDC steps at the broker: conversions, the whitelist, withdrawals, deposits.

Each asks the broker before acting again when its intent is recorded: a
conversion by its client order id (and, past its deadline, cancelled and read
again so a fill that beat the cancel is accounted for), a withdrawal in the
broker's transfer list (no idempotency key there). Transfer polling alerts on a
status regression and keeps polling (docs/rebalancing.md says why).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from ..cctp.contracts import TRANSFER_TOPIC
from ..domain.numbers import EXACT, ZERO, fmt
from ..errors import AmbiguousBrokerError, FinalBrokerError
from ..protocols import CashConversion, ConversionCanceller, WalletTransfer
from .events import Moved
from .inventory import USDC, MoveKind, Venue
from .operations import StepFailed, list_operations
from .state import TO_ONCHAIN, OperationState
from .usdc_base import FundsAtBroker, UsdcBase, _now
from .usdc_flow import (
    CONVERSION_ENDED,
    claimed_transfers,
    conversion_filled,
    find_deposit,
    find_withdrawal,
    from_units,
    received,
    spent,
    transfer_regression,
    usdc_units,
)

log = logging.getLogger(__name__)

ON, OFF = Venue.ONCHAIN.value, Venue.OFFCHAIN.value


def _filled(c: CashConversion, filled: Decimal) -> dict[str, str]:
    """What a ``convert`` step records of its ended conversion, either side."""
    return {
        "order_id": c.order_id,
        "filled": fmt(filled),
        "price": fmt(c.filled_price) if c.filled_price is not None else "",
        "fees": fmt(c.fees),
    }


class BrokerSteps(UsdcBase):
    """Broker-side steps: convert, unwind, whitelist, broker_withdraw, withdraw_poll,
    detect_deposit."""

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
                    **_filled(c, filled),
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
                **_filled(c, sold),
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

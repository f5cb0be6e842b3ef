"""USDC moves between the broker and the Base vault: the pure part (no I/O).

Two operation kinds run on the durable operation log (see operations.py):

``usdc_to_onchain`` (too much cash at the broker)::

    convert -> whitelist -> broker_withdraw -> withdraw_poll -> approve_burn -> burn
    -> attest -> relay -> approve_vault -> vault_deposit

``usdc_to_offchain`` (too much USDC in the vault)::

    vault_withdraw -> approve_burn -> burn -> attest -> relay -> detect_deposit -> convert

Where the amount is after each step, as inventory moves (``Moved``):

* to onchain: request reserves ``q`` cash at the broker; ``convert`` spends
  ``S`` dollars (settles ``q``, debits ``S - q``) for ``F`` USDC held at the broker
  (in flight, offchain); ``withdraw_poll`` settles ``F`` offchain and the ``W``
  units that reached the wallet on Ethereum arrive onchain (in flight); the burn
  keeps them in flight (across chains); ``relay`` settles the CCTP fee, ``N``
  is left in the wallet on Base; ``vault_deposit`` releases ``N``.
* to offchain: request reserves ``q`` onchain; ``vault_withdraw`` releases what
  the vault did not have; ``relay`` (minted to the broker's deposit address)
  settles ``w`` onchain and ``N`` arrives offchain (in flight); ``detect_deposit``
  settles any broker deposit fee; ``convert`` settles the USDC and credits the
  dollars received.

Every failure ends the operation with the amount put where it is. Burned but
not minted funds are in limbo: they stay in flight (and the end reason says so)
until an operator has them minted.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from ..domain.numbers import EXACT, ZERO, fmt
from ..protocols import CashConversion, WalletTransfer
from .events import Moved
from .inventory import USDC, MoveKind, Venue
from .state import TO_ONCHAIN, OperationState

DECIMALS = 6
WITHDRAWAL_CLOCK_SKEW = timedelta(seconds=5)
"""How much earlier than our intent a broker's ``created_at`` may read and still be ours."""


class AmountError(ValueError):
    """A USDC amount that cannot be moved (not whole units, or eaten by the fee cap)."""


def usdc_units(amount: Decimal) -> int:
    """Exact 6-decimal base units of a positive amount; a remainder is an error."""
    scaled = amount.scaleb(DECIMALS, context=EXACT)
    if scaled != scaled.to_integral_value() or scaled <= 0:
        raise AmountError(f"{amount} is not a positive whole number of USDC base units")
    return int(scaled)


def from_units(units: int) -> Decimal:
    return Decimal(units).scaleb(-DECIMALS)


def fee_cap_units(units: int, bps: Decimal) -> int:
    """``ceil(units * bps / 10000)``: the most Circle may take for a fast transfer."""
    exact = EXACT.divide(EXACT.multiply(Decimal(units), bps), Decimal(10000))
    return int(exact.to_integral_value(rounding=decimal.ROUND_CEILING))


def check_fee_cap(units: int, bps: Decimal) -> int:
    """The fee cap for ``units``; refuses an amount the cap would reach (nothing would land)."""
    cap = fee_cap_units(units, bps)
    if cap >= units:
        raise AmountError(
            f"{fmt(from_units(units))} USDC is too small: a fee of up to {bps} bps "
            f"({fmt(from_units(cap))}) would take all of it"
        )
    return cap


def spent(conversion: CashConversion) -> Decimal:
    """Dollars a buy (USD -> USDC) cost: filled quantity at the fill price, plus fees."""
    filled = conversion.filled_quantity or ZERO
    price = conversion.filled_price if conversion.filled_price is not None else Decimal(1)
    return EXACT.add(EXACT.multiply(filled, price), conversion.fees)


def received(conversion: CashConversion) -> Decimal:
    """Dollars a sell (USDC -> USD) brought: filled quantity at the fill price, less fees."""
    filled = conversion.filled_quantity or ZERO
    price = conversion.filled_price if conversion.filled_price is not None else Decimal(1)
    return EXACT.subtract(EXACT.multiply(filled, price), conversion.fees)


CONVERSION_ENDED = frozenset({"filled", "failed", "cancelled"})
"""Conversion states after which nothing more fills."""


def conversion_filled(conversion: CashConversion) -> Decimal | None:
    """The USDC quantity an ended conversion actually converted, or None if nothing.

    ``filled`` is the whole order; ``cancelled`` (a cancel after a timeout) or
    ``failed`` with a ``filled_quantity`` is a partial fill: that part was
    converted and must be accounted for, not dropped.
    """
    filled = conversion.filled_quantity
    if conversion.status not in CONVERSION_ENDED or not filled or filled <= ZERO:
        return None
    return filled


TRANSFER_RANK = {"PENDING": 0, "PROCESSING": 1, "COMPLETE": 2, "FAILED": 2}


def transfer_regression(previous: str | None, current: str) -> str | None:
    """Why ``previous -> current`` is a status regression of a broker transfer, or None.

    A transfer only moves forward (``PENDING -> PROCESSING -> COMPLETE|FAILED``):
    going back (``PROCESSING -> PENDING``) or changing after ``COMPLETE``/``FAILED``
    is a regression (reference §6.1). Unknown statuses are not ranked (None).
    """
    if previous is None:
        return None
    before, now = previous.upper(), current.upper()
    if before == now or before not in TRANSFER_RANK or now not in TRANSFER_RANK:
        return None
    if TRANSFER_RANK[before] == 2:
        return f"status changed after {before} (now {now})"
    if TRANSFER_RANK[now] < TRANSFER_RANK[before]:
        return f"status went back from {before} to {now}"
    return None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def find_withdrawal(
    transfers: Iterable[WalletTransfer],
    address: str,
    amount: Decimal,
    after: datetime,
    claimed: set[str],
) -> WalletTransfer | None:
    """The withdrawal an interrupted request may have created, if the broker has one.

    OUTGOING USDC to ``address`` for exactly ``amount``, created no earlier than
    the intent (less a little clock skew), not already another operation's.
    The oldest match wins (ours was created first after the intent).
    """
    matches = []
    for t in transfers:
        created = _parse_time(t.created_at)
        if (
            t.direction.upper() == "OUTGOING"
            and t.asset.upper() == USDC
            and (t.to_address or "").lower() == address.lower()
            and t.amount == amount
            and t.transfer_id not in claimed
            and (created is None or created >= after - WITHDRAWAL_CLOCK_SKEW)
        ):
            matches.append((created or after, t.transfer_id, t))
    if not matches:
        return None
    return min(matches, key=lambda m: (m[0], m[1]))[2]


def find_deposit(transfers: Iterable[WalletTransfer], tx_hash: str) -> WalletTransfer | None:
    """The broker's INCOMING transfer made by the mint transaction ``tx_hash``."""
    for t in transfers:
        if t.direction.upper() == "INCOMING" and (t.tx_hash or "").lower() == tx_hash.lower():
            return t
    return None


def _d(details: dict[str, str], key: str) -> Decimal:
    return Decimal(details[key])


def burned_amount(state: OperationState) -> Decimal:
    """What the burn takes: what reached the wallet on Ethereum, or left the vault."""
    if state.kind == TO_ONCHAIN:
        return _d(state.done["withdraw_poll"], "received")
    return _d(state.done["vault_withdraw"], "quantity")


def limbo(state: OperationState) -> bool:
    """Burned and not (known to be) minted: neither chain can give the funds back now.

    A failed operation stays so until :meth:`UsdcRunner.land` sees the mint (``landed``).
    """
    return "burn" in state.done and "relay" not in state.done and "landed" not in state.done


def usdc_failure_moves(state: OperationState) -> list[Moved]:
    """Where the in-flight amount is when a USDC operation ends early (see module doc)."""
    op = state.operation_id
    on, off = Venue.ONCHAIN.value, Venue.OFFCHAIN.value
    release, settle, credit = MoveKind.RELEASE.value, MoveKind.SETTLE.value, MoveKind.CREDIT.value
    done = state.done
    if limbo(state):
        return []  # stays in flight onchain (burned): visible until an operator mints it
    if state.kind == TO_ONCHAIN:
        if "convert" not in done:
            return [Moved(op, USDC, off, release, state.quantity)]
        if "withdraw_poll" not in done:
            held = _d(done["convert"], "filled")
            unwound = state.done.get("unwind")
            if unwound is not None:  # sold back into cash (a part may be left unsold)
                back = [
                    Moved(op, USDC, off, settle, held),
                    Moved(op, USDC, off, credit, _d(unwound, "received")),
                ]
                unsold = _d(unwound, "unsold") if unwound.get("unsold") else ZERO
                if unsold != ZERO:
                    back.append(Moved(op, USDC, off, credit, unsold))
                return back
            return [Moved(op, USDC, off, release, held)]  # USDC left at the broker
        if "relay" not in done:
            return [Moved(op, USDC, on, release, burned_amount(state))]  # wallet on Ethereum
        return [Moved(op, USDC, on, release, _d(done["relay"], "received"))]  # wallet on Base
    if "vault_withdraw" not in done:
        return [Moved(op, USDC, on, release, state.quantity)]
    if "relay" not in done:
        return [Moved(op, USDC, on, release, burned_amount(state))]  # wallet on Base
    if "detect_deposit" not in done:
        return []  # at the broker's deposit address, not credited: in flight offchain
    deposited = _d(done["detect_deposit"], "credited")
    return [Moved(op, USDC, off, release, deposited)]  # USDC held at the broker


def where(state: OperationState) -> str:
    """Plain words for the end reason: where the funds are now."""
    done = state.done
    if limbo(state):
        dst = "Base" if state.kind == TO_ONCHAIN else "Ethereum"
        nonce = done.get("attest", {}).get("nonce", "not attested yet")
        return (
            f"{fmt(burned_amount(state))} USDC burned (tx {done['burn']['tx_hash']}, "
            f"nonce {nonce}) and not minted on {dst}: in limbo until it is relayed"
        )
    if state.kind == TO_ONCHAIN:
        if "convert" not in done:
            return "the cash is still at the broker"
        if "withdraw_poll" not in done:
            if "unwind" in done:
                unsold = done["unwind"].get("unsold")
                if unsold:
                    return (
                        f"the USDC was sold back to cash at the broker except {unsold} USDC "
                        "(the sale was cancelled part-filled: sell USDCUSD)"
                    )
                return "the USDC was sold back to cash at the broker"
            return f"{done['convert']['filled']} USDC is held at the broker (sell USDCUSD)"
        if "relay" not in done:
            return f"{fmt(burned_amount(state))} USDC is in the wallet on Ethereum"
        return f"{done['relay']['received']} USDC is in the wallet on Base"
    if "vault_withdraw" not in done:
        return "the USDC is still in the vault"
    if "relay" not in done:
        return f"{fmt(burned_amount(state))} USDC is in the wallet on Base"
    if "detect_deposit" not in done:
        return (
            f"{done['relay']['received']} USDC was minted to the broker's deposit address "
            f"(tx {done['relay']['tx_hash']}) and not credited: ask the broker"
        )
    return f"{done['detect_deposit']['credited']} USDC is held at the broker (sell USDCUSD)"


def costs(state: OperationState) -> dict[str, Decimal]:
    """Cost items recorded so far (positive = lost): conversion, broker, cctp."""
    found: dict[str, Decimal] = {}
    for step in state.done.values():
        for key, value in step.items():
            if key.startswith("cost_"):
                found[key[5:]] = EXACT.add(found.get(key[5:], ZERO), Decimal(value))
    return found


def claimed_transfers(states: Sequence[OperationState], but: str) -> set[str]:
    """Broker withdrawals other operations already own."""
    return {
        s.done["broker_withdraw"]["transfer_id"]
        for s in states
        if s.operation_id != but and "broker_withdraw" in s.done
    }

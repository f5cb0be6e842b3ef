"""Calldata for the CCTP V2 contracts and decoders for their receipt logs (pure).

Selectors and topics are Circle's (``reference/rebalancing.md`` §8); a test checks them
against the ABI of the devnet stand-ins. Decoders take a receipt as
``eth_getTransactionReceipt`` returns it (hex strings) and look at logs by topic, and by
emitting contract when ``address`` is given (a receipt may carry another contract's log
with the same topic).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from .message import FINALITY_FAST, ZERO32, CctpMessageError, bytes32_to_address, to_bytes32

ZERO = ZERO32
"""bytes32(0): ``destinationCaller`` meaning anyone may relay."""


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


DEPOSIT_FOR_BURN_SELECTOR = _selector(
    "depositForBurn(uint256,uint32,bytes32,address,bytes32,uint256,uint32)"
)
RECEIVE_MESSAGE_SELECTOR = _selector("receiveMessage(bytes,bytes)")
USED_NONCES_SELECTOR = _selector("usedNonces(bytes32)")
APPROVE_SELECTOR = _selector("approve(address,uint256)")
ALLOWANCE_SELECTOR = _selector("allowance(address,address)")
BALANCE_OF_SELECTOR = _selector("balanceOf(address)")

MESSAGE_SENT_TOPIC = _topic("MessageSent(bytes)")
MESSAGE_RECEIVED_TOPIC = _topic("MessageReceived(address,uint32,bytes32,bytes32,uint32,bytes)")
DEPOSIT_FOR_BURN_TOPIC = _topic(
    "DepositForBurn(address,uint256,address,bytes32,uint32,bytes32,bytes32,uint256,uint32,bytes)"
)
MINT_AND_WITHDRAW_TOPIC = _topic("MintAndWithdraw(address,uint256,address,uint256)")
TRANSFER_TOPIC = _topic("Transfer(address,address,uint256)")

NONCE_USED = 1
"""``usedNonces(nonce)`` once a message was received (0 before)."""


def _call(selector: bytes, types: list[str], args: list[Any]) -> str:
    return "0x" + (selector + encode(types, args)).hex()


def _b32(value: str | bytes) -> bytes:
    return bytes.fromhex(to_bytes32(value)[2:])


# -- calldata -------------------------------------------------------------------------


def deposit_for_burn(  # noqa: PLR0917 - the contract's argument order
    amount_units: int,
    destination_domain: int,
    mint_recipient: str,
    burn_token: str,
    max_fee_units: int,
    min_finality_threshold: int = FINALITY_FAST,
    destination_caller: str = ZERO,
) -> str:
    """``depositForBurn``; ``mint_recipient``/``destination_caller`` as address or bytes32."""
    return _call(
        DEPOSIT_FOR_BURN_SELECTOR,
        ["uint256", "uint32", "bytes32", "address", "bytes32", "uint256", "uint32"],
        [
            amount_units,
            destination_domain,
            _b32(mint_recipient),
            burn_token,
            _b32(destination_caller),
            max_fee_units,
            min_finality_threshold,
        ],
    )


def receive_message(message: bytes, attestation: bytes) -> str:
    return _call(RECEIVE_MESSAGE_SELECTOR, ["bytes", "bytes"], [message, attestation])


def used_nonces(nonce_hex: str) -> str:
    return _call(USED_NONCES_SELECTOR, ["bytes32"], [_b32(nonce_hex)])


def approve(spender: str, amount_units: int) -> str:
    return _call(APPROVE_SELECTOR, ["address", "uint256"], [spender, amount_units])


def allowance(owner: str, spender: str) -> str:
    return _call(ALLOWANCE_SELECTOR, ["address", "address"], [owner, spender])


def balance_of(owner: str) -> str:
    return _call(BALANCE_OF_SELECTOR, ["address"], [owner])


def decode_uint(result: str) -> int:
    """A single uint256 from an ``eth_call`` answer (``usedNonces``, ``balanceOf``, ...)."""
    try:
        (value,) = decode(
            ["uint256"], bytes.fromhex(result[2:] if result.startswith("0x") else result)
        )
    except (DecodingError, ValueError, TypeError) as exc:
        raise CctpMessageError(f"not a uint256 answer: {result!r:.80} ({exc})") from None
    return int(value)


# -- receipt decoders -----------------------------------------------------------------


@attrs.frozen
class MintResult:
    """``MintAndWithdraw`` on the destination: what the recipient actually got."""

    recipient: str
    amount_units: int
    """Net amount minted to the recipient (burned amount − fee)."""
    fee_units: int
    mint_token: str


@attrs.frozen
class BurnEvent:
    """``DepositForBurn`` on the source."""

    burn_token: str
    amount_units: int
    depositor: str
    mint_recipient: str
    destination_domain: int
    destination_token_messenger: str
    destination_caller: str
    max_fee_units: int
    min_finality_threshold: int
    hook_data: bytes
    log_index: int


def _logs(receipt: dict[str, Any], topic: str, address: str | None) -> Iterator[dict[str, Any]]:
    logs = receipt.get("logs") if isinstance(receipt, dict) else None
    if not isinstance(logs, list):
        raise CctpMessageError("not a transaction receipt: no logs list")
    for log in logs:
        topics = log.get("topics") or []
        if not topics or str(topics[0]).lower() != topic:
            continue
        if address is not None and str(log.get("address", "")).lower() != address.lower():
            continue
        yield log


def _data(log: dict[str, Any]) -> bytes:
    try:
        return bytes.fromhex(str(log.get("data", "0x"))[2:])
    except ValueError:
        raise CctpMessageError("log data is not hex") from None


def _topic_address(log: dict[str, Any], index: int) -> str:
    try:
        return bytes32_to_address(str(log["topics"][index]))
    except (IndexError, KeyError):
        raise CctpMessageError(f"log lacks indexed topic {index}") from None


def _index(log: dict[str, Any]) -> int:
    value = log.get("logIndex", "0x0")
    return int(value, 16) if isinstance(value, str) else int(value)


def message_sent_all(receipt: dict[str, Any], address: str | None = None) -> list[bytes]:
    """Every ``MessageSent`` payload in the receipt, in log order."""
    out = []
    for log in _logs(receipt, MESSAGE_SENT_TOPIC, address):
        try:
            (payload,) = decode(["bytes"], _data(log))
        except DecodingError as exc:
            raise CctpMessageError(f"MessageSent data is not ABI bytes: {exc}") from None
        out.append(bytes(payload))
    return out


def message_sent(receipt: dict[str, Any], address: str | None = None) -> bytes | None:
    """The first ``MessageSent`` payload (the raw, unattested message), or None."""
    found = message_sent_all(receipt, address)
    return found[0] if found else None


def deposit_for_burn_event(receipt: dict[str, Any], address: str | None = None) -> BurnEvent | None:
    for log in _logs(receipt, DEPOSIT_FOR_BURN_TOPIC, address):
        try:
            amount, mint_recipient, dst, dst_messenger, caller, max_fee, hook = decode(
                ["uint256", "bytes32", "uint32", "bytes32", "bytes32", "uint256", "bytes"],
                _data(log),
            )
            min_finality = int(str(log["topics"][3]), 16)
        except (DecodingError, IndexError, KeyError, ValueError) as exc:
            raise CctpMessageError(f"malformed DepositForBurn log: {exc}") from None
        return BurnEvent(
            burn_token=_topic_address(log, 1),
            amount_units=int(amount),
            depositor=_topic_address(log, 2),
            mint_recipient="0x" + bytes(mint_recipient).hex(),
            destination_domain=int(dst),
            destination_token_messenger="0x" + bytes(dst_messenger).hex(),
            destination_caller="0x" + bytes(caller).hex(),
            max_fee_units=int(max_fee),
            min_finality_threshold=min_finality,
            hook_data=bytes(hook),
            log_index=_index(log),
        )
    return None


def mint_and_withdraw(receipt: dict[str, Any], address: str | None = None) -> MintResult | None:
    """``MintAndWithdraw`` from a ``receiveMessage`` receipt (net amount and fee), or None."""
    for log in _logs(receipt, MINT_AND_WITHDRAW_TOPIC, address):
        try:
            amount, fee = decode(["uint256", "uint256"], _data(log))
        except DecodingError as exc:
            raise CctpMessageError(f"malformed MintAndWithdraw log: {exc}") from None
        return MintResult(
            recipient=_topic_address(log, 1),
            amount_units=int(amount),
            fee_units=int(fee),
            mint_token=_topic_address(log, 2),
        )
    return None


def message_received(receipt: dict[str, Any], address: str | None = None) -> str | None:
    """The nonce (0x-hex bytes32) of the ``MessageReceived`` in the receipt, or None."""
    for log in _logs(receipt, MESSAGE_RECEIVED_TOPIC, address):
        try:
            return to_bytes32(str(log["topics"][2]))
        except (IndexError, KeyError):
            raise CctpMessageError("MessageReceived log lacks its nonce topic") from None
    return None


def message_received_filter(
    message_transmitter: str, nonce_hex: str, from_block: int = 0, to_block: int | str = "latest"
) -> dict[str, Any]:
    """``eth_getLogs`` params for the ``MessageReceived`` of one nonce on the destination:
    finds the relay (ours or a third party's) whose receipt holds the ``MintAndWithdraw``."""
    return {
        "address": message_transmitter,
        "fromBlock": hex(from_block),
        "toBlock": to_block if isinstance(to_block, str) else hex(to_block),
        "topics": [MESSAGE_RECEIVED_TOPIC, None, to_bytes32(nonce_hex)],
    }

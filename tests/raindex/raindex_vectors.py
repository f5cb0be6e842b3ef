"""Shared fixtures for the decoder tests: the reference's test order and log builders."""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode

from st0x_liquidity.raindex import abi
from st0x_liquidity.raindex.decode import RawLog

ORDERBOOK = "0x" + "0b" * 20
OWNER = "0x" + "dd" * 20
USDC = "0x" + "aa" * 20
AAPL = "0x" + "bb" * 20
TX = "0xbe" + "ee" * 31


def word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def order(owner: str = OWNER, nonce: bytes = b"\xee" * 32) -> tuple[Any, ...]:
    ios = [(USDC, b"\x00" * 32), (AAPL, b"\x00" * 32)]
    return (owner, ("0x" + "22" * 20, "0x" + "33" * 20, b"\x00"), ios, ios, nonce)


def raw(
    name: str,
    values: list[Any],
    *,
    log_index: int = 293,
    tx: str = TX,
    block: int = 12345,
    address: str = ORDERBOOK,
) -> RawLog:
    return RawLog(
        address=address,
        topics=(abi.topic0(name),),
        data=encode(list(abi.event_types(name)), values),
        block_number=block,
        block_hash="0x" + "12" * 32,
        tx_hash=tx,
        log_index=log_index,
    )


def take_log(
    input_index: int, output_index: int, taker_input: bytes, taker_output: bytes, **kw: Any
) -> RawLog:
    owner = kw.pop("owner", OWNER)
    config = (order(owner), input_index, output_index, [("0x" + "00" * 20, [], b"")])
    return raw("TakeOrderV3", ["0x" + "11" * 20, config, taker_input, taker_output], **kw)


def clear_log(alice_owner: str, bob_owner: str, **kw: Any) -> RawLog:
    alice = order(alice_owner)
    bob = order(bob_owner, nonce=b"\xff" * 32)
    cfg = (0, 1, 1, 0, b"\x00" * 32, b"\x00" * 32)
    return raw("ClearV3", ["0x" + "de" * 20, alice, bob, cfg], **kw)


def after_clear_log(
    alice_output: int, bob_output: int, alice_input: int, bob_input: int, **kw: Any
) -> RawLog:
    change = (word(alice_output), word(bob_output), word(alice_input), word(bob_input))
    return raw("AfterClearV2", ["0x" + "aa" * 20, change], **kw)

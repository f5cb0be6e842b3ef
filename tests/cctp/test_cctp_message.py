"""Message layout, fee arithmetic and receipt decoders (pure; hypothesis)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from eth_abi.abi import decode, encode
from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.cctp import contracts
from st0x_liquidity.cctp.message import (
    AmountTooSmall,
    BurnMessage,
    CctpError,
    CctpMessage,
    CctpMessageError,
    attest,
    attestation_expired,
    bytes32_to_address,
    check_amount,
    decode_message,
    encode_message,
    max_fee_units,
    nonce_of,
    to_bytes32,
)

b32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
u32 = st.integers(0, 2**32 - 1)
u256 = st.integers(0, 2**256 - 1)
burns = st.builds(
    BurnMessage,
    version=u32,
    burn_token=b32,
    mint_recipient=b32,
    amount=u256,
    message_sender=b32,
    max_fee=u256,
    fee_executed=u256,
    expiration_block=u256,
    hook_data=st.binary(max_size=64),
)
messages = st.builds(
    CctpMessage,
    version=u32,
    source_domain=u32,
    destination_domain=u32,
    nonce=b32,
    sender=b32,
    recipient=b32,
    destination_caller=b32,
    min_finality_threshold=u32,
    finality_threshold_executed=u32,
    burn=burns,
)


@given(messages)
def test_encode_decode_round_trip(message: CctpMessage) -> None:
    data = encode_message(message)
    assert len(data) == 376 + len(message.burn.hook_data)
    assert decode_message(data) == message
    assert nonce_of(data) == message.nonce


@given(st.binary(min_size=376, max_size=500))
def test_decode_encode_gives_back_the_bytes(data: bytes) -> None:
    assert encode_message(decode_message(data)) == data


@given(st.one_of(st.binary(max_size=400), st.text(max_size=20), st.integers(), st.none()))
def test_decode_raises_only_message_errors(data: Any) -> None:
    try:
        message = decode_message(data)
    except CctpMessageError as exc:
        assert str(exc)
    else:
        assert isinstance(data, bytes) and len(data) >= 376
        assert encode_message(message) == data


def test_decode_says_why() -> None:
    with pytest.raises(CctpMessageError, match="147 bytes, shorter than the 148-byte header"):
        decode_message(b"\x00" * 147)
    with pytest.raises(CctpMessageError, match="body is 227 bytes"):
        decode_message(b"\x00" * (148 + 227))
    with pytest.raises(CctpMessageError, match="is bytes"):
        decode_message("0x00")  # type: ignore[arg-type]


def test_layout_offsets() -> None:
    """Fields at §10.1's offsets: nonce at 12, finality executed at 144, amount at 216, fee at 312."""
    message = CctpMessage(
        version=1,
        source_domain=0,
        destination_domain=6,
        nonce="0x" + "ab" * 32,
        sender=to_bytes32("0x" + "11" * 20),
        recipient=to_bytes32("0x" + "22" * 20),
        destination_caller="0x" + "00" * 32,
        min_finality_threshold=1000,
        finality_threshold_executed=2000,
        burn=BurnMessage(
            version=1,
            burn_token=to_bytes32("0x" + "33" * 20),
            mint_recipient=to_bytes32("0x" + "44" * 20),
            amount=100_000_000,
            message_sender=to_bytes32("0x" + "55" * 20),
            max_fee=10_000,
            fee_executed=9_000,
            expiration_block=77,
        ),
    )
    data = encode_message(message)
    assert data[0:4] == (1).to_bytes(4, "big") and data[8:12] == (6).to_bytes(4, "big")
    assert data[12:44] == b"\xab" * 32
    assert data[44:76] == b"\x00" * 12 + b"\x11" * 20
    assert int.from_bytes(data[140:144], "big") == 1000
    assert int.from_bytes(data[144:148], "big") == 2000
    assert data[148:152] == (1).to_bytes(4, "big")
    assert data[184:216] == b"\x00" * 12 + b"\x44" * 20
    assert int.from_bytes(data[216:248], "big") == 100_000_000
    assert int.from_bytes(data[280:312], "big") == 10_000
    assert int.from_bytes(data[312:344], "big") == 9_000
    assert int.from_bytes(data[344:376], "big") == 77
    assert message.burn.mint_recipient_address == "0x" + "44" * 20
    assert message.attested


def test_attest_fills_the_four_fields() -> None:
    raw = decode_message(b"\x00" * 4 + b"\x00" * 372)
    assert not raw.attested
    nonce = "0x" + "ff" * 32
    done = attest(
        raw, nonce=nonce, finality_threshold_executed=1000, fee_executed=5, expiration_block=9
    )
    assert (done.nonce, done.finality_threshold_executed) == (nonce, 1000)
    assert (done.burn.fee_executed, done.burn.expiration_block) == (5, 9)
    assert int(done.nonce, 16) > 2**64  # kept whole, as hex


def test_fields_are_validated() -> None:
    with pytest.raises(CctpMessageError, match="uint32"):
        CctpMessage(
            version=2**32,
            source_domain=0,
            destination_domain=0,
            nonce="0x" + "00" * 32,
            sender="0x" + "00" * 32,
            recipient="0x" + "00" * 32,
            destination_caller="0x" + "00" * 32,
            min_finality_threshold=0,
            finality_threshold_executed=0,
            burn=decode_message(b"\x00" * 376).burn,
        )
    with pytest.raises(CctpMessageError, match="expected 32 bytes"):
        to_bytes32("0x1234")
    assert bytes32_to_address(to_bytes32("0x" + "ab" * 20)) == "0x" + "ab" * 20


# -- fees -----------------------------------------------------------------------------


@given(st.integers(0, 10**18), st.integers(0, 100_000))
def test_max_fee_is_the_exact_ceiling(amount: int, tenth_millibps: int) -> None:
    bps = Decimal(tenth_millibps) / Decimal(1000)  # e.g. 1.3, 0.001
    expected = -(-amount * tenth_millibps // (10_000 * 1000))
    assert max_fee_units(amount, bps) == expected


def test_max_fee_examples() -> None:
    assert max_fee_units(100_000_000, Decimal(1)) == 10_000
    assert max_fee_units(100_000_000, Decimal("1.3")) == 13_000
    assert max_fee_units(1, Decimal("1.3")) == 1  # rounds up, never down
    assert max_fee_units(10_001, Decimal(1)) == 2
    assert max_fee_units(10_000, Decimal(1)) == 1
    assert max_fee_units(0, Decimal(1)) == 0
    assert max_fee_units(123, Decimal(0)) == 0
    assert max_fee_units(10**30, Decimal("1.3")) == 13 * 10**25  # exact, where float math is not
    with pytest.raises(CctpError, match="negative"):
        max_fee_units(1, Decimal(-1))
    with pytest.raises(CctpError, match="finite"):
        max_fee_units(1, Decimal("NaN"))
    with pytest.raises(AmountTooSmall):
        max_fee_units(-1, Decimal(1))


def test_check_amount_refuses_what_the_fee_cap_reaches() -> None:
    check_amount(2, 1)
    check_amount(100_000_000, max_fee_units(100_000_000, Decimal(1)))
    for amount, fee in ((1, 1), (1, 2), (0, 0), (-5, 0)):
        with pytest.raises(AmountTooSmall):
            check_amount(amount, fee)
    with pytest.raises(AmountTooSmall, match="not above the CCTP fee cap"):
        check_amount(5, max_fee_units(5, Decimal(20_000)))


@given(st.integers(1, 10**15), st.integers(0, 50_000))
def test_check_amount_agrees_with_the_contract_rule(amount: int, millibps: int) -> None:
    fee = max_fee_units(amount, Decimal(millibps) / 1000)
    try:
        check_amount(amount, fee)
    except AmountTooSmall:
        assert fee >= amount
    else:
        assert fee < amount


def test_attestation_expiry() -> None:
    assert not attestation_expired(0, 10**9)
    assert attestation_expired(100, 100)
    assert attestation_expired(100, 99)  # lands in block 100 at best: not > 100
    assert not attestation_expired(100, 98)
    assert not attestation_expired(100, 99, margin=0)


# -- calldata and receipts ------------------------------------------------------------


def test_deposit_for_burn_calldata() -> None:
    recipient = "0x" + "12" * 20
    usdc = "0x" + "34" * 20
    data = contracts.deposit_for_burn(100, 6, recipient, usdc, 1)
    assert data.startswith("0x8e0250ee")
    args = decode(
        ["uint256", "uint32", "bytes32", "address", "bytes32", "uint256", "uint32"],
        bytes.fromhex(data[10:]),
    )
    assert args == (100, 6, b"\x00" * 12 + b"\x12" * 20, usdc, b"\x00" * 32, 1, 1000)
    assert contracts.used_nonces("0x" + "ab" * 32) == "0xfeb61724" + "ab" * 32
    assert contracts.receive_message(b"m", b"a").startswith("0x57ecfd28")


def _log(topics: list[str], data: bytes, address: str = "0x" + "00" * 20) -> dict[str, Any]:
    return {"address": address, "topics": topics, "data": "0x" + data.hex(), "logIndex": "0x3"}


def test_receipt_decoders() -> None:
    nonce = "0x" + "cd" * 32
    recipient, token = "0x" + "aa" * 20, "0x" + "bb" * 20
    receipt = {
        "logs": [
            _log([contracts.TRANSFER_TOPIC], b""),
            _log([contracts.MESSAGE_SENT_TOPIC], encode(["bytes"], [b"payload"])),
            _log(
                [contracts.MINT_AND_WITHDRAW_TOPIC, to_bytes32(recipient), to_bytes32(token)],
                encode(["uint256", "uint256"], [990, 10]),
            ),
            _log(
                [
                    contracts.MESSAGE_RECEIVED_TOPIC,
                    to_bytes32(recipient),
                    nonce,
                    to_bytes32("0x" + "00" * 20),
                ],
                b"",
            ),
        ]
    }
    assert contracts.message_sent(receipt) == b"payload"
    assert contracts.message_sent(receipt, "0x" + "99" * 20) is None  # another emitter
    assert contracts.mint_and_withdraw(receipt) == contracts.MintResult(recipient, 990, 10, token)
    assert contracts.message_received(receipt) == nonce
    assert contracts.deposit_for_burn_event(receipt) is None
    empty: dict[str, Any] = {"logs": []}
    assert contracts.message_sent(empty) is None
    assert contracts.mint_and_withdraw(empty) is None
    assert contracts.message_received(empty) is None
    bad = {"logs": [_log([contracts.MESSAGE_SENT_TOPIC], b"\x01")]}
    with pytest.raises(CctpMessageError):
        contracts.message_sent(bad)
    with pytest.raises(CctpMessageError, match="receipt"):
        contracts.message_sent({})
    assert contracts.decode_uint("0x" + "00" * 31 + "01") == 1
    with pytest.raises(CctpMessageError):
        contracts.decode_uint("0x12")

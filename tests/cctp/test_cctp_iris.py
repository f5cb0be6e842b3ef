"""IrisClient and wait_for_attestation against the fake Iris (and pure parsing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from cctp_support import FAST_FEE, burn
from hypothesis import given
from hypothesis import strategies as st
from st0x_testing.cctp_devnet import CctpPair
from st0x_testing.fake_iris import ATTESTER_KEY, FakeIris
from st0x_testing.raindex_devnet import free_port

from st0x_liquidity.cctp.iris import (
    AttestationTimeout,
    FeeTier,
    IrisClient,
    IrisError,
    IrisNotFound,
    IrisRateLimited,
    IrisUnavailable,
    fast_fee,
    parse_fees,
    parse_message,
    parse_messages,
    wait_for_attestation,
)
from st0x_liquidity.cctp.message import decode_message

UNKNOWN_TX = "0x" + "5a" * 32


class VirtualTime:
    """A clock that only moves when the poller sleeps (no real waiting, no timing asserts)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
async def bare_iris() -> AsyncIterator[FakeIris]:
    """A fake Iris watching no chain (fees, switches, error answers)."""
    iris = await FakeIris(attester_keys=[ATTESTER_KEY]).start()
    try:
        yield iris
    finally:
        await iris.stop()


@pytest.fixture
async def client(bare_iris: FakeIris) -> AsyncIterator[IrisClient]:
    c = IrisClient(bare_iris.url, timeout=10.0)
    try:
        yield c
    finally:
        await c.close()


async def test_not_seen_then_pending_then_complete(cctp_pair: CctpPair) -> None:
    time = VirtualTime()
    iris = await cctp_pair.start_iris(pending_seconds=60.0, clock=time.clock)
    client = IrisClient(iris.url)
    try:
        assert await client.messages(0, UNKNOWN_TX) == []  # 404: not seen
        receipt = await burn(cctp_pair.ethereum)
        tx = receipt["transactionHash"]
        (pending,) = await client.messages(0, tx)
        assert pending.status == "pending_confirmations" and not pending.complete
        assert pending.message is None and pending.attestation is None
        assert await client.messages(6, tx) == []  # the burn is on domain 0, not 6
        time.now += 61.0
        (done,) = await client.messages(0, tx)
        assert done.complete and done.status == "complete"
        assert done.message is not None and done.nonce == decode_message(done.message).nonce
        assert done.fee_executed == FAST_FEE and done.finality_threshold_executed == 1000
        assert iris.requests == 4
        assert iris.attested() == [(tx, done.nonce)]
    finally:
        await client.close()
        await iris.stop()


async def test_wait_times_out_while_pending(cctp_pair: CctpPair) -> None:
    iris = await cctp_pair.start_iris(pending_seconds=3600.0)
    client = IrisClient(iris.url)
    time = VirtualTime()
    try:
        receipt = await burn(cctp_pair.ethereum)
        with pytest.raises(
            AttestationTimeout, match="within 30s: status pending_confirmations"
        ) as info:
            await wait_for_attestation(
                client,
                0,
                receipt["transactionHash"],
                interval=5.0,
                deadline=30.0,
                sleep=time.sleep,
                clock=time.clock,
            )
        assert info.value.last is not None and info.value.last.status == "pending_confirmations"
        assert time.sleeps == [5.0] * 6  # polled every interval until the deadline
    finally:
        await client.close()
        await iris.stop()


async def test_wait_backs_off_while_down_then_succeeds(
    cctp_pair: CctpPair, fake_iris: FakeIris
) -> None:
    client = IrisClient(fake_iris.url)
    time = VirtualTime()
    receipt = await burn(cctp_pair.ethereum)
    fake_iris.down = True

    async def sleep(seconds: float) -> None:
        await time.sleep(seconds)
        if len(time.sleeps) == 5:
            fake_iris.down = False

    try:
        with pytest.raises(IrisUnavailable, match="503"):
            await client.messages(0, receipt["transactionHash"])
        got = await wait_for_attestation(
            client,
            0,
            receipt["transactionHash"],
            interval=1.0,
            deadline=600.0,
            sleep=sleep,
            clock=time.clock,
        )
        assert got.complete
        assert time.sleeps == [1.0, 2.0, 4.0, 8.0, 8.0]  # exponential, capped at 8 × interval
    finally:
        await client.close()


async def test_wait_honours_retry_after(cctp_pair: CctpPair, fake_iris: FakeIris) -> None:
    client = IrisClient(fake_iris.url)
    time = VirtualTime()
    receipt = await burn(cctp_pair.ethereum)
    fake_iris.rate_limited = True
    fake_iris.retry_after = 7

    async def sleep(seconds: float) -> None:
        await time.sleep(seconds)
        fake_iris.rate_limited = False

    try:
        with pytest.raises(IrisRateLimited) as info:
            await client.messages(0, receipt["transactionHash"])
        assert info.value.retry_after == 7.0
        got = await wait_for_attestation(
            client,
            0,
            receipt["transactionHash"],
            interval=1.0,
            deadline=60.0,
            sleep=sleep,
            clock=time.clock,
        )
        assert got.complete and time.sleeps == [7.0]
    finally:
        await client.close()


async def test_slow_answer_is_unavailable(bare_iris: FakeIris) -> None:
    bare_iris.delay = 2.0
    client = IrisClient(bare_iris.url, timeout=0.2)
    try:
        with pytest.raises(IrisUnavailable, match="Timeout"):
            await client.fees(0, 6)
    finally:
        await client.close()
    assert bare_iris.requests == 1


async def test_connection_refused_is_unavailable() -> None:
    client = IrisClient(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(IrisUnavailable):
            await client.messages(0, UNKNOWN_TX)
    finally:
        await client.close()


async def test_fees_and_client_errors(bare_iris: FakeIris, client: IrisClient) -> None:
    tiers = await client.fees(0, 6)
    assert tiers == [FeeTier(1000, Decimal(1)), FeeTier(2000, Decimal(0))]
    assert fast_fee(await client.fees(6, 0)) == Decimal("1.3")
    bare_iris.fees[(0, 6)] = {2000: Decimal(0)}
    with pytest.raises(IrisError, match="no fee for finality threshold 1000"):
        fast_fee(await client.fees(0, 6))
    with pytest.raises(IrisNotFound):
        await client.reattest("0x" + "01" * 32)
    with pytest.raises(IrisError, match="400"):
        await client.messages(0, "0x1234")  # a malformed hash is a 4xx: not retried
    time = VirtualTime()
    with pytest.raises(IrisError, match="400"):
        await wait_for_attestation(
            client, 0, "0x12", interval=1.0, deadline=60.0, sleep=time.sleep, clock=time.clock
        )
    assert time.sleeps == []


# -- parsing (pure) -------------------------------------------------------------------


def test_parse_fees_is_tolerant() -> None:
    assert parse_fees(
        [
            {"finalityThreshold": "1000", "minimumFee": "1.3"},
            {"finalityThreshold": 2000, "minimumFee": 0},
        ]
    ) == [FeeTier(1000, Decimal("1.3")), FeeTier(2000, Decimal(0))]
    assert parse_fees([{"finalityThreshold": 1000, "minimumFee": Decimal("0.5")}])[
        0
    ].minimum_fee_bps == Decimal("0.5")
    bad: Any
    for bad in (
        {},
        [1],
        [{"finalityThreshold": 1000}],
        [{"finalityThreshold": 1000, "minimumFee": "x"}],
        [{"finalityThreshold": 1000, "minimumFee": -1}],
    ):
        with pytest.raises(IrisError):
            parse_fees(bad)


def test_parse_messages_is_tolerant() -> None:
    assert parse_messages({"messages": []}) == []
    assert parse_messages({}) == []
    pending = parse_message({"status": "pending", "attestation": "PENDING", "message": "0x"})
    assert (pending.complete, pending.attestation, pending.message) == (False, None, None)
    message = bytes(376)
    nonce = "0x" + "ee" * 32
    numbers = parse_message(
        {
            "status": "complete",
            "message": "0x" + message.hex(),
            "attestation": "0x" + "11" * 65,
            "decodedMessage": {
                "nonce": nonce,
                "decodedMessageBody": {"feeExecuted": 5, "expirationBlock": "9"},
            },
            "delayReason": "",
        }
    )
    # The signed bytes win over the decoded JSON (here they say nonce 0, fee 0).
    assert numbers.complete and numbers.nonce == "0x" + "00" * 32 and numbers.fee_executed == 0
    assert numbers.delay_reason is None
    strings = parse_message(
        {
            "status": "pending_confirmations",
            "decodedMessage": {
                "nonce": nonce,
                "finalityThresholdExecuted": "2000",
                "decodedMessageBody": {"feeExecuted": "0", "expirationBlock": 12},
            },
            "delayReason": "insufficient_fee",
        }
    )
    assert (strings.nonce, strings.fee_executed, strings.expiration_block) == (nonce, 0, 12)
    assert (strings.finality_threshold_executed, strings.delay_reason) == (2000, "insufficient_fee")
    bad: Any
    for bad in (
        [],
        {"messages": "x"},
        {"messages": [{"no": "status"}]},
        {"messages": [{"status": "complete", "message": "0xzz"}]},
    ):
        with pytest.raises(IrisError):
            parse_messages(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.decimals(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
entry_keys = st.sampled_from(
    [
        "status",
        "message",
        "attestation",
        "decodedMessage",
        "eventNonce",
        "delayReason",
        "nonce",
        "decodedMessageBody",
        "feeExecuted",
        "expirationBlock",
        "finalityThresholdExecuted",
    ]
)
entries = st.dictionaries(
    entry_keys,
    json_values | st.sampled_from(["complete", "0x" + "00" * 376, "PENDING"]),
    max_size=6,
)


@given(
    st.one_of(json_values, st.builds(lambda es: {"messages": es}, st.lists(entries, max_size=3)))
)
def test_parse_messages_raises_only_iris_errors(data: Any) -> None:
    try:
        parsed = parse_messages(data)
    except IrisError as exc:
        assert str(exc)
    else:
        assert all(
            m.complete == (m.status == "complete" and bool(m.message) and bool(m.attestation))
            for m in parsed
        )


@given(json_values)
def test_parse_fees_raises_only_iris_errors(data: Any) -> None:
    try:
        tiers = parse_fees(data)
    except IrisError as exc:
        assert str(exc)
    else:
        assert all(t.minimum_fee_bps >= 0 for t in tiers)

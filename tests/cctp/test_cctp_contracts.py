"""The CCTP V2 stand-ins on two anvil chains behave as Circle's contracts (§10)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from cctp_support import AMOUNT, FAST_FEE, attested, burn, evolve_burn, reason, resign, sign
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak
from st0x_testing import cctp_devnet as devnet
from st0x_testing.cctp_devnet import CctpDeployment, CctpPair, CctpSide, cctp_artifacts
from st0x_testing.fake_iris import FakeIris
from st0x_testing.raindex_devnet import MAKER, OTHER_MAKER, TAKER, TransactionFailed

from st0x_liquidity.cctp import contracts
from st0x_liquidity.cctp.message import (
    ZERO32,
    CctpMessage,
    decode_message,
    encode_message,
    to_bytes32,
)

TRANSFER = contracts.TRANSFER_TOPIC
BURN = "0x" + keccak(text="Burn(address,uint256)").hex()
MINT = "0x" + keccak(text="Mint(address,address,uint256)").hex()


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"


def test_selectors_and_topics_match_circle() -> None:
    """§8's selectors and topics, from the compiled stand-ins' ABI and the module constants."""
    expected_functions = {
        "depositForBurn(uint256,uint32,bytes32,address,bytes32,uint256,uint32)": "8e0250ee",
        "receiveMessage(bytes,bytes)": "57ecfd28",
        "usedNonces(bytes32)": "feb61724",
    }
    expected_events = {
        "DepositForBurn": "0x0c8c1cbdc5190613ebd485511d4e2812cfa45eecb79d845893331fedad5130a5",
        "MintAndWithdraw": "0x50c55e915134d457debfa58eb6f4342956f8b0616d51a89a3659360178e1ab63",
        "MessageSent": "0x8c5261668696ce22758910d05bab8f186d6eb247ceac2af2e82c7dc17669b036",
        "MessageReceived": "0xff48c13eda96b1cceacc6b9edeedc9e9db9d6226afbc30146b720c19d3addb1c",
    }
    abi = (
        cctp_artifacts()["MessageTransmitterV2"]["abi"]
        + cctp_artifacts()["TokenMessengerV2"]["abi"]
    )
    functions = {
        _signature(e): keccak(text=_signature(e))[:4].hex() for e in abi if e["type"] == "function"
    }
    events = {
        e["name"]: "0x" + keccak(text=_signature(e)).hex() for e in abi if e["type"] == "event"
    }
    for signature, selector in expected_functions.items():
        assert functions[signature] == selector
    for name, topic in expected_events.items():
        assert events[name] == topic
    assert contracts.DEPOSIT_FOR_BURN_SELECTOR.hex() == "8e0250ee"
    assert contracts.RECEIVE_MESSAGE_SELECTOR.hex() == "57ecfd28"
    assert contracts.USED_NONCES_SELECTOR.hex() == "feb61724"
    assert expected_events["DepositForBurn"] == contracts.DEPOSIT_FOR_BURN_TOPIC
    assert expected_events["MintAndWithdraw"] == contracts.MINT_AND_WITHDRAW_TOPIC
    assert expected_events["MessageSent"] == contracts.MESSAGE_SENT_TOPIC
    assert expected_events["MessageReceived"] == contracts.MESSAGE_RECEIVED_TOPIC
    indexed = {
        e["name"]: [i["name"] for i in e["inputs"] if i["indexed"]]
        for e in abi
        if e["type"] == "event"
    }
    assert indexed["DepositForBurn"] == ["burnToken", "depositor", "minFinalityThreshold"]
    assert indexed["MintAndWithdraw"] == ["mintRecipient", "mintToken"]
    assert indexed["MessageReceived"] == ["caller", "nonce", "finalityThresholdExecuted"]


async def test_burn_attest_mint_end_to_end(cctp_pair: CctpPair, fake_iris: FakeIris) -> None:
    eth, base = cctp_pair.ethereum, cctp_pair.base
    maker_before = await devnet.usdc_balance(eth.chain, eth.deployment, MAKER)
    supply_before = await devnet.view(eth.chain, "TestUSDC", eth.deployment.usdc, "totalSupply")
    receipt = await burn(eth)

    # Source: the full amount burned; log order Transfer, Burn, Transfer(→0), MessageSent, DepositForBurn.
    assert [log["topics"][0] for log in receipt["logs"]] == [
        TRANSFER,
        BURN,
        TRANSFER,
        contracts.MESSAGE_SENT_TOPIC,
        contracts.DEPOSIT_FOR_BURN_TOPIC,
    ]
    assert await devnet.usdc_balance(eth.chain, eth.deployment, MAKER) == maker_before - AMOUNT
    supply = await devnet.view(eth.chain, "TestUSDC", eth.deployment.usdc, "totalSupply")
    assert supply == supply_before - AMOUNT
    raw = contracts.message_sent(receipt, eth.deployment.message_transmitter)
    assert raw is not None and len(raw) == 376
    sent = decode_message(raw)
    assert sent.nonce == ZERO32 and sent.finality_threshold_executed == 0
    assert sent.burn.fee_executed == 0 and sent.burn.expiration_block == 0
    assert (sent.version, sent.source_domain, sent.destination_domain) == (1, 0, 6)
    assert sent.sender == to_bytes32(eth.deployment.token_messenger)
    assert sent.recipient == to_bytes32(base.deployment.token_messenger)
    assert sent.burn.mint_recipient_address == TAKER
    assert sent.burn.message_sender_address == MAKER
    assert sent.burn.burn_token_address == eth.deployment.usdc
    assert (sent.burn.amount, sent.burn.max_fee, sent.min_finality_threshold) == (
        AMOUNT,
        FAST_FEE,
        1000,
    )
    event = contracts.deposit_for_burn_event(receipt)
    assert event is not None
    assert (event.amount_units, event.depositor, event.destination_domain) == (AMOUNT, MAKER, 6)
    assert event.destination_token_messenger == sent.recipient
    assert event.min_finality_threshold == 1000 and event.max_fee_units == FAST_FEE

    got = await attested(fake_iris.url, eth, receipt)
    assert got.message is not None and got.attestation is not None and got.nonce is not None
    assert int(got.nonce, 16) > 2**64
    assert got.fee_executed == FAST_FEE and got.finality_threshold_executed == 1000

    # Destination: net to the recipient, fee to the fee recipient, one event each, in order.
    recipient_before = await devnet.usdc_balance(base.chain, base.deployment, TAKER)
    assert await devnet.used_nonce(base.chain, base.deployment, got.nonce) == 0
    minted = await devnet.relay(
        base.chain, base.deployment, OTHER_MAKER, got.message, got.attestation
    )
    assert [log["topics"][0] for log in minted["logs"]] == [
        MINT,
        TRANSFER,
        MINT,
        TRANSFER,
        contracts.MINT_AND_WITHDRAW_TOPIC,
        contracts.MESSAGE_RECEIVED_TOPIC,
    ]
    result = contracts.mint_and_withdraw(minted, base.deployment.token_messenger)
    assert result == contracts.MintResult(
        recipient=TAKER,
        amount_units=AMOUNT - FAST_FEE,
        fee_units=FAST_FEE,
        mint_token=base.deployment.usdc,
    )
    assert contracts.message_received(minted) == got.nonce
    received = next(
        log for log in minted["logs"] if log["topics"][0] == contracts.MESSAGE_RECEIVED_TOPIC
    )
    assert received["topics"][1] == to_bytes32(OTHER_MAKER)  # caller: the relayer
    assert int(received["topics"][3], 16) == 1000
    after = await devnet.usdc_balance(base.chain, base.deployment, TAKER)
    assert after - recipient_before == AMOUNT - FAST_FEE
    assert (
        await devnet.usdc_balance(base.chain, base.deployment, cctp_pair.fee_recipient) == FAST_FEE
    )
    assert await devnet.used_nonce(base.chain, base.deployment, got.nonce) == contracts.NONCE_USED

    # Replay reverts; the raw MessageSent bytes never pass (nonce 0 is pre-claimed), signed or not.
    mt = base.deployment.message_transmitter
    again = contracts.receive_message(got.message, got.attestation)
    assert await reason(base, TAKER, mt, again) == "Nonce already used"
    with_raw = contracts.receive_message(raw, sign(cctp_pair.attester_key, raw))
    assert await reason(base, TAKER, mt, with_raw) == "Nonce already used"
    assert await devnet.used_nonce(base.chain, base.deployment, ZERO32) == 1
    try:
        await devnet.relay(base.chain, base.deployment, TAKER, got.message, got.attestation)
    except TransactionFailed:
        pass
    else:
        raise AssertionError("a replayed relay was mined successfully")
    assert await devnet.usdc_balance(base.chain, base.deployment, TAKER) == after


async def test_base_to_ethereum_uses_the_base_fee(cctp_pair: CctpPair, fake_iris: FakeIris) -> None:
    """1.3 bp from Base: the fee endpoint and the attester agree (ceil of 100 × 1.3 bp)."""
    eth, base = cctp_pair.ethereum, cctp_pair.base
    receipt = await burn(base, max_fee=13_000, to=MAKER)
    got = await attested(fake_iris.url, base, receipt)
    assert got.fee_executed == 13_000
    assert got.message is not None and got.attestation is not None
    minted = await devnet.relay(eth.chain, eth.deployment, MAKER, got.message, got.attestation)
    result = contracts.mint_and_withdraw(minted)
    assert result is not None and (result.amount_units, result.fee_units) == (
        AMOUNT - 13_000,
        13_000,
    )
    assert result.mint_token == eth.deployment.usdc


async def test_expired_attestation_reverts_then_reattest_works(
    cctp_pair: CctpPair, fake_iris: FakeIris
) -> None:
    eth, base = cctp_pair.ethereum, cctp_pair.base
    fake_iris.expiration_window = 0  # expires at the destination's current height
    receipt = await burn(eth)
    got = await attested(fake_iris.url, eth, receipt)
    assert got.message is not None and got.attestation is not None and got.nonce is not None
    height = await base.chain.block_number()
    assert got.expiration_block == height  # from the destination chain's height, not the source's
    data = contracts.receive_message(got.message, got.attestation)
    mt = base.deployment.message_transmitter
    assert await reason(base, TAKER, mt, data) == "Message expired and must be re-signed"

    from st0x_liquidity.cctp.iris import IrisClient, reattest_and_wait

    fake_iris.expiration_window = 50
    client = IrisClient(fake_iris.url)
    try:
        fresh = await reattest_and_wait(
            client,
            eth.domain,
            receipt["transactionHash"],
            got.nonce,
            destination_block=await base.chain.block_number(),
            interval=0.05,
            deadline=30.0,
        )
    finally:
        await client.close()
    assert fresh.nonce == got.nonce and fresh.expiration_block == height + 50
    assert fresh.message is not None and fresh.attestation is not None
    minted = await devnet.relay(
        base.chain, base.deployment, TAKER, fresh.message, fresh.attestation
    )
    result = contracts.mint_and_withdraw(minted)
    assert result is not None and result.amount_units == AMOUNT - FAST_FEE


async def test_attestation_checks(cctp_pair: CctpPair, fake_iris: FakeIris) -> None:
    eth, base = cctp_pair.ethereum, cctp_pair.base
    got = await attested(fake_iris.url, eth, await burn(eth))
    assert got.message is not None and got.attestation is not None
    message, good = got.message, got.attestation
    mt = base.deployment.message_transmitter

    async def why(attestation: bytes, msg: bytes = message) -> str | None:
        return await reason(base, TAKER, mt, contracts.receive_message(msg, attestation))

    stranger = "0x" + keccak(text="not an attester").hex()
    assert await why(sign(stranger, message)) == "Invalid signature: not attester"
    eip191 = bytes(
        Account.sign_message(encode_defunct(keccak(message)), cctp_pair.attester_key).signature
    )
    assert await why(eip191) == "Invalid signature: not attester"
    for v in (0, 1):
        assert await why(good[:64] + bytes([v])) == "ECDSA: invalid signature 'v' value"
    assert await why(good + b"\x00") == "Invalid attestation length"
    assert await why(good[:64]) == "Invalid attestation length"
    assert await why(b"") == "Invalid attestation length"
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(good[32:64], "big")
    high_s = good[:32] + (n - s).to_bytes(32, "big") + bytes([55 - good[64]])
    assert await why(high_s) == "ECDSA: invalid signature 's' value"
    # A signature over a different message recovers to another address.
    assert await why(good, message[:-1] + b"\x01") == "Invalid signature: not attester"
    # Two attesters: exactly two signatures, in ascending signer order.
    second = "0x" + keccak(text="second attester").hex()
    owner = base.deployment.owner
    await base.chain.send(
        owner,
        mt,
        devnet.cctp_calldata(
            "MessageTransmitterV2", "enableAttester", Account.from_key(second).address
        ),
    )
    await base.chain.send(
        owner, mt, devnet.cctp_calldata("MessageTransmitterV2", "setSignatureThreshold", 2)
    )
    assert await why(good) == "Invalid attestation length"
    pairs = sorted(
        (int(Account.from_key(k).address, 16), sign(k, message))
        for k in (cctp_pair.attester_key, second)
    )
    ascending = pairs[0][1] + pairs[1][1]
    descending = pairs[1][1] + pairs[0][1]
    assert await why(descending) == "Invalid signature order or dupe"
    assert await why(pairs[0][1] + pairs[0][1]) == "Invalid signature order or dupe"
    assert await why(ascending) is None
    minted = await devnet.relay(base.chain, base.deployment, TAKER, message, ascending)
    assert contracts.message_received(minted) == got.nonce


async def test_receive_checks_in_order(cctp_pair: CctpPair, fake_iris: FakeIris) -> None:
    """Crafted, validly signed messages hit each of §10.3's checks."""
    eth, base = cctp_pair.ethereum, cctp_pair.base
    got = await attested(fake_iris.url, eth, await burn(eth))
    assert got.message is not None
    good = decode_message(got.message)
    mt = base.deployment.message_transmitter

    async def why(message: CctpMessage, sender: str = TAKER, on: CctpSide = base) -> str | None:
        data, attestation = resign(cctp_pair, message)
        to = on.deployment.message_transmitter
        return await reason(on, sender, to, contracts.receive_message(data, attestation))

    short = encode_message(good)[:147]
    assert await reason(
        base, TAKER, mt, contracts.receive_message(short, sign(cctp_pair.attester_key, short))
    ) == ("Invalid message: too short")
    assert await why(good, on=eth) == "Invalid destination domain"
    caller = attrs.evolve(good, destination_caller=to_bytes32(MAKER))
    assert await why(caller, sender=TAKER) == "Invalid caller for message"
    assert await why(caller, sender=MAKER) is None
    assert await why(attrs.evolve(good, version=2)) == "Invalid message version"
    assert (
        await why(attrs.evolve(good, sender=to_bytes32(TAKER)))
        == "Remote TokenMessenger unsupported"
    )
    assert await why(attrs.evolve(good, source_domain=3)) == "Remote TokenMessenger unsupported"
    assert (
        await why(attrs.evolve(good, finality_threshold_executed=0))
        == "Unsupported finality threshold"
    )
    assert (
        await why(attrs.evolve(good, finality_threshold_executed=499))
        == "Unsupported finality threshold"
    )
    assert await why(attrs.evolve(good, finality_threshold_executed=500)) is None
    over = evolve_burn(got.message, fee_executed=FAST_FEE + 1)
    assert await why(over) == "Fee exceeds max fee"
    all_fee = evolve_burn(got.message, fee_executed=AMOUNT, max_fee=AMOUNT)
    assert await why(all_fee) == "Fee equals or exceeds amount"
    assert await why(evolve_burn(got.message, version=2)) == "Invalid message body version"
    # Finalized path (2000) honours the fee too.
    finalized = attrs.evolve(good, finality_threshold_executed=2000)
    data, attestation = resign(cctp_pair, finalized)
    minted = await devnet.relay(base.chain, base.deployment, TAKER, data, attestation)
    result = contracts.mint_and_withdraw(minted)
    assert result is not None and result.fee_units == FAST_FEE
    # A token the destination never linked cannot be minted.
    unlinked = attrs.evolve(good, nonce=to_bytes32(b"\x07" * 32))
    unlinked = attrs.evolve(
        unlinked, burn=attrs.evolve(unlinked.burn, burn_token=to_bytes32(TAKER))
    )
    assert await why(unlinked) == "Mint token not supported"


async def test_pair_setup(cctp_pair: CctpPair, tmp_path: Path) -> None:
    """Chain ids 1/8453, domains 0/6, distinct addresses, linked both ways, funded accounts."""
    eth, base = cctp_pair.ethereum, cctp_pair.base
    assert (eth.deployment.chain_id, base.deployment.chain_id) == (1, 8453)
    assert (eth.domain, base.domain) == (0, 6)
    assert eth.deployment.usdc != base.deployment.usdc
    assert eth.deployment.token_messenger != base.deployment.token_messenger
    for local, remote in ((eth, base), (base, eth)):
        d = local.deployment
        remote_tm = await devnet.view(
            local.chain,
            "TokenMessengerV2",
            d.token_messenger,
            "remoteTokenMessengers",
            remote.domain,
        )
        assert "0x" + remote_tm.hex() == to_bytes32(remote.deployment.token_messenger)
        linked = await devnet.view(
            local.chain,
            "TokenMinterV2",
            d.token_minter,
            "getLocalToken",
            remote.domain,
            bytes.fromhex(to_bytes32(remote.deployment.usdc)[2:]),
        )
        assert linked.lower() == d.usdc
        assert (
            await devnet.view(
                local.chain, "MessageTransmitterV2", d.message_transmitter, "localDomain"
            )
            == local.domain
        )
        assert await devnet.view(
            local.chain,
            "MessageTransmitterV2",
            d.message_transmitter,
            "isEnabledAttester",
            cctp_pair.attester,
        )
        assert await devnet.view(local.chain, "TestUSDC", d.usdc, "decimals") == 6
        for account in cctp_pair.accounts:
            assert await devnet.usdc_balance(local.chain, d, account) == cctp_pair.funded_units
    written = json.loads((tmp_path / "cctp-pair.json").read_text())
    assert written["chains"]["base"]["message_transmitter"] == base.deployment.message_transmitter
    assert written["chains"]["ethereum"]["rpc_url"] == eth.rpc_url
    assert CctpDeployment.from_json(eth.deployment.to_json()) == eth.deployment


async def test_burn_checks(cctp_pair: CctpPair) -> None:
    eth = cctp_pair.ethereum
    tm = eth.deployment.token_messenger
    await eth.chain.send(MAKER, eth.deployment.usdc, contracts.approve(tm, 2**256 - 1))
    await devnet.mint_usdc(eth.chain, eth.deployment, MAKER, devnet.DEFAULT_BURN_LIMIT + 1)

    async def why(
        amount: int, max_fee: int, destination: int = 6, recipient: str = TAKER
    ) -> str | None:
        data = contracts.deposit_for_burn(
            amount, destination, recipient, eth.deployment.usdc, max_fee
        )
        return await reason(eth, MAKER, tm, data)

    assert await why(0, 0) == "Amount must be nonzero"
    assert await why(AMOUNT, AMOUNT) == "Max fee must be less than amount"
    assert await why(AMOUNT, AMOUNT + 1) == "Max fee must be less than amount"
    assert await why(AMOUNT, FAST_FEE - 1) == "Insufficient max fee"
    assert await why(AMOUNT, FAST_FEE) is None
    assert await why(100, 0) == "Insufficient max fee"  # floor of the min fee is 1 unit
    assert await why(100, 1) is None
    assert await why(AMOUNT, FAST_FEE, recipient=ZERO32) == "Mint recipient must be nonzero"
    assert await why(AMOUNT, FAST_FEE, destination=3) == "No TokenMessenger for domain"
    assert (
        await why(devnet.DEFAULT_BURN_LIMIT + 1, devnet.DEFAULT_BURN_LIMIT)
        == "Burn amount exceeds per tx limit"
    )
    minimum = await devnet.view(eth.chain, "TokenMessengerV2", tm, "getMinFeeAmount", AMOUNT)
    assert minimum == FAST_FEE
    await eth.chain.send(MAKER, tm, devnet.cctp_calldata("TokenMessengerV2", "setMinFee", 0))
    assert await why(AMOUNT, 0) is None
    # The burn token needs a burn limit on the source.
    await eth.chain.send(
        MAKER,
        eth.deployment.token_minter,
        devnet.cctp_calldata("TokenMinterV2", "setMaxBurnAmountPerMessage", eth.deployment.usdc, 0),
    )
    assert await why(AMOUNT, 0) == "Burn token not supported"


async def test_third_party_relays_first(cctp_pair: CctpPair, fake_iris: FakeIris) -> None:
    """Someone else relays our message: usedNonces says so and the mint is in the logs."""
    eth, base = cctp_pair.ethereum, cctp_pair.base
    start = await base.chain.block_number()
    got = await attested(fake_iris.url, eth, await burn(eth))
    assert got.message is not None and got.attestation is not None and got.nonce is not None
    assert await devnet.find_relay(base.chain, base.deployment, got.nonce, start) is None
    theirs = await devnet.relay(
        base.chain, base.deployment, OTHER_MAKER, got.message, got.attestation
    )

    # Our relay checks first instead of sending a transaction that would revert.
    assert await devnet.used_nonce(base.chain, base.deployment, got.nonce) == contracts.NONCE_USED
    found = await devnet.find_relay(base.chain, base.deployment, got.nonce, start)
    assert found is not None
    tx_hash, mint = found
    assert tx_hash == theirs["transactionHash"]
    assert mint == contracts.MintResult(TAKER, AMOUNT - FAST_FEE, FAST_FEE, base.deployment.usdc)


async def test_insufficient_max_fee_falls_back_to_standard(
    cctp_pair: CctpPair, fake_iris: FakeIris
) -> None:
    """A cap below Iris's fast fee: attested at 2000 with no fee ("insufficient_fee")."""
    eth, base = cctp_pair.ethereum, cctp_pair.base
    fake_iris.fees[(0, 6)] = {1000: fake_iris.fee_table(0, 6)[1000] * 2, 2000: Decimal(0)}
    got = await attested(fake_iris.url, eth, await burn(eth, max_fee=FAST_FEE))
    assert got.delay_reason == "insufficient_fee"
    assert (got.finality_threshold_executed, got.fee_executed) == (2000, 0)
    assert got.message is not None and got.attestation is not None
    minted = await devnet.relay(base.chain, base.deployment, TAKER, got.message, got.attestation)
    assert contracts.mint_and_withdraw(minted) == contracts.MintResult(
        TAKER, AMOUNT, 0, base.deployment.usdc
    )
    # A standard transfer asked for (minFinalityThreshold 2000) is attested at 2000 too.
    std = await attested(fake_iris.url, eth, await burn(eth, min_finality_threshold=2000))
    assert (std.finality_threshold_executed, std.fee_executed, std.delay_reason) == (2000, 0, None)

"""USDC in and out of the fake Broker API with real ERC-20 transfers on anvil.

A 6-decimal ``TestERC20`` (the raindex devnet artifact takes the decimals as a
constructor argument) stands in for USDC on Ethereum. The fake's exchange hot
wallet is anvil's unlocked ``TAKER`` account: a withdrawal becomes its real
``transfer`` to the market-maker wallet; a real ``transfer`` to the fake's
deposit address, found in the ``Transfer`` logs, becomes an INCOMING transfer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import attrs
import pytest
from eth_account import Account
from st0x_alpaca_broker.custody import AlpacaCustodian
from st0x_testing.fake_alpaca_broker import FakeAlpacaBroker
from st0x_testing.raindex_devnet import MAKER, TAKER, Anvil, Chain, calldata, start_anvil

from st0x_liquidity import WalletTransfer
from st0x_liquidity.raindex.floats import scale_units
from st0x_liquidity.rebalancing.chain import TRANSFER_TOPIC

from .conftest import (  # type: ignore[import-not-found]
    BROKER_KEY,
    BROKER_SECRET,
    custodian_for,
    wait_for,
)

DEPOSIT_ADDRESS = "0x00000000000000000000000000000000000a1BCA"


def _topic(address: str) -> str:
    return "0x" + "0" * 24 + address[2:].lower()


@attrs.define
class Ethereum:
    anvil: Anvil
    chain: Chain
    usdc: str

    async def balance(self, owner: str) -> Decimal:
        (units,) = await self.chain.call("TestERC20", self.usdc, "balanceOf", owner)
        return scale_units(int(units), 6)

    async def transfer(self, sender: str, to: str, amount: Decimal) -> str:
        data = calldata("TestERC20", "transfer", to, int(amount.scaleb(6)))
        receipt = await self.chain.send(sender, self.usdc, data)
        return str(receipt["transactionHash"])


@pytest.fixture
async def ethereum() -> AsyncIterator[Ethereum]:
    anvil = start_anvil()
    chain = await Chain.connect(anvil.http_url)
    try:
        usdc = await chain.deploy("TestERC20", "USD Coin", "USDC", 6)
        for holder in (TAKER, MAKER):
            await chain.send(MAKER, usdc, calldata("TestERC20", "mint", holder, 10_000 * 10**6))
        yield Ethereum(anvil, chain, usdc)
    finally:
        await chain.close()
        anvil.stop()


@pytest.fixture
async def wired(ethereum: Ethereum) -> AsyncIterator[tuple[FakeAlpacaBroker, AlpacaCustodian]]:
    async def send_usdc(address: str, amount: Decimal) -> str:
        return await ethereum.transfer(TAKER, address, amount)

    async def watch_deposits() -> list[tuple[str, str, Decimal]]:
        logs = await ethereum.chain.rpc(
            "eth_getLogs",
            [
                {
                    "address": ethereum.usdc,
                    "fromBlock": "0x0",
                    "topics": [TRANSFER_TOPIC, None, _topic(DEPOSIT_ADDRESS)],
                }
            ],
        )
        return [
            (
                str(log["transactionHash"]),
                "0x" + str(log["topics"][1])[-40:],
                scale_units(int(log["data"], 16), 6),
            )
            for log in logs
        ]

    fake = FakeAlpacaBroker(
        key=BROKER_KEY,
        secret=BROKER_SECRET,
        deposit_address=DEPOSIT_ADDRESS,
        hot_wallet=TAKER,
        send_usdc=send_usdc,
        watch_deposits=watch_deposits,
    )
    fake.withdrawal_delay = fake.deposit_delay = 0.05
    fake.watch_interval = 0.05
    await fake.start()
    custodian = custodian_for(fake)
    try:
        yield fake, custodian
    finally:
        await custodian.close()
        await fake.stop()


async def test_withdrawal_is_a_real_erc20_transfer_and_a_deposit_comes_back(
    ethereum: Ethereum, wired: tuple[FakeAlpacaBroker, AlpacaCustodian]
) -> None:
    fake, custodian = wired
    wallet = str(Account.create().address)
    fake.cash = Decimal(500)
    fake.withdrawal_network_fee = Decimal("1.5")

    await custodian.convert("buy", Decimal(250), "to-base-1")

    async def converted() -> bool | None:
        found = await custodian.conversion("to-base-1")
        return True if found is not None and found.status == "filled" else None

    await wait_for(converted, "the conversion")
    assert await custodian.add_to_whitelist(wallet) == "APPROVED"
    out = await custodian.withdraw_usdc(Decimal(250), wallet)

    async def final(transfer_id: str) -> WalletTransfer | None:
        for t in await custodian.transfers():
            if t.transfer_id == transfer_id and t.status in ("COMPLETE", "FAILED"):
                return t
        return None

    sent = await wait_for(lambda: final(out.transfer_id), "the withdrawal")
    assert sent.status == "COMPLETE" and sent.tx_hash is not None
    receipt = await ethereum.chain.receipt(sent.tx_hash)
    (log,) = [entry for entry in receipt["logs"] if entry["topics"][0] == TRANSFER_TOPIC]
    assert log["topics"][2] == _topic(wallet) and log["topics"][1] == _topic(TAKER)
    assert await ethereum.balance(wallet) == Decimal("248.5")  # 250 less the network fee
    assert fake.usdc == 0 and fake.cash == Decimal(250)

    assert await custodian.deposit_address() == DEPOSIT_ADDRESS
    deposit_tx = await ethereum.transfer(MAKER, DEPOSIT_ADDRESS, Decimal("75.25"))

    async def arrived() -> WalletTransfer | None:
        for t in await custodian.transfers():
            if t.tx_hash == deposit_tx.lower() and t.status == "COMPLETE":
                return t
        return None

    incoming = await wait_for(arrived, "the deposit")
    assert incoming.direction == "INCOMING" and incoming.amount == Decimal("75.25")
    assert incoming.from_address == MAKER.lower() and incoming.to_address == DEPOSIT_ADDRESS
    assert fake.usdc == Decimal("75.25")
    newest, oldest = await custodian.transfers()
    assert (newest.transfer_id, oldest.transfer_id) == (incoming.transfer_id, out.transfer_id)
    balances = await custodian.balances()
    assert (balances.usd, balances.usdc) == (Decimal(250), Decimal("75.25"))

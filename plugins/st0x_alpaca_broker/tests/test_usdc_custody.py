"""The Broker API's USDC custody (conversion, whitelist, transfers) against the fake over HTTP."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from st0x_alpaca.wire import MalformedReplyError
from st0x_alpaca_broker.custody import AlpacaCustodian
from st0x_alpaca_broker.plugin import st0x_custodian
from st0x_testing.fake_alpaca_broker import FakeAlpacaBroker

from st0x_liquidity import (
    AmbiguousBrokerError,
    CashConversion,
    Custodian,
    FinalBrokerError,
    UsdcCustodian,
    WalletTransfer,
)
from st0x_liquidity.config import load_config
from st0x_liquidity.plugins import load_registry

from .conftest import (  # type: ignore[import-not-found]
    BROKER_KEY,
    BROKER_SECRET,
    wait_for,
)

WALLET = "0x8ba1f109551bD432803012645Ac136ddd64DBA72"


async def filled(custodian: AlpacaCustodian, cid: str) -> CashConversion:
    async def probe() -> CashConversion | None:
        found = await custodian.conversion(cid)
        assert found is not None
        return found if found.status in ("filled", "failed", "cancelled") else None

    done: CashConversion = await wait_for(probe, f"conversion {cid}")
    return done


async def settled(custodian: AlpacaCustodian, transfer_id: str) -> WalletTransfer:
    async def probe() -> WalletTransfer | None:
        for t in await custodian.transfers():
            if t.transfer_id == transfer_id and t.status in ("COMPLETE", "FAILED"):
                return t
        return None

    final: WalletTransfer = await wait_for(probe, f"transfer {transfer_id}")
    return final


def test_one_object_is_both_custodians(usdc_custodian: AlpacaCustodian) -> None:
    assert isinstance(usdc_custodian, UsdcCustodian)
    assert isinstance(usdc_custodian, Custodian)


async def test_buy_then_sell_moves_cash_and_usdc_with_slippage_and_fee(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian, make_broker_executor: Any
) -> None:
    broker_fake.cash = Decimal(1000)
    placed = await usdc_custodian.convert("buy", Decimal("100.5"), "usdc-buy-1")
    assert placed.status == "submitted" and placed.client_order_id == "usdc-buy-1"
    assert placed.quantity == Decimal("100.5") and placed.filled_quantity is None
    body = broker_fake.order_bodies[-1]
    assert body == {
        "symbol": "USDCUSD",
        "qty": "100.5",
        "side": "buy",
        "type": "market",
        "time_in_force": "gtc",
        "client_order_id": "usdc-buy-1",
    }
    done = await filled(usdc_custodian, "usdc-buy-1")
    assert done.order_id == placed.order_id
    assert (done.filled_quantity, done.filled_price, done.fees) == (
        Decimal("100.5"),
        Decimal(1),
        Decimal(0),
    )
    assert broker_fake.usdc == Decimal("100.5") and broker_fake.cash == Decimal("899.5")
    balances = await usdc_custodian.balances()
    assert (balances.usd, balances.usdc) == (Decimal("899.5"), Decimal("100.5"))
    executor = await make_broker_executor()
    inventory = await executor.inventory()
    assert inventory.cash == Decimal(1000)  # USD + USDC: the offchain USDC-equivalent
    assert [str(p.symbol) for p in inventory.positions] == []

    broker_fake.conversion_slippage_bps = Decimal(10)
    broker_fake.conversion_fee_bps = Decimal(5)
    await usdc_custodian.convert("sell", Decimal(100), "usdc-sell-1")
    sold = await filled(usdc_custodian, "usdc-sell-1")
    assert sold.side == "sell" and sold.filled_price == Decimal("0.999")
    assert sold.fees == Decimal("0.04995")  # 5 bps of 99.9 USD, reported as commission
    assert broker_fake.usdc == Decimal("0.5")
    assert broker_fake.cash == Decimal("899.5") + Decimal("99.9") - Decimal("0.04995")


async def test_duplicate_client_order_id_returns_the_first_order(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    first = await usdc_custodian.convert("buy", Decimal(10), "usdc-dup")
    again = await usdc_custodian.convert("buy", Decimal(10), "usdc-dup")
    assert again.order_id == first.order_id
    assert broker_fake.order_posts == 2 and len(broker_fake.orders) == 1
    await filled(usdc_custodian, "usdc-dup")
    assert broker_fake.usdc == Decimal(10)
    assert await usdc_custodian.conversion("never-placed") is None


async def test_long_client_order_id_is_shortened_and_found_again(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    cid = "usdc-rebalance-" + "x" * 60
    placed = await usdc_custodian.convert("buy", Decimal(1), cid)
    assert placed.client_order_id == cid
    assert len(broker_fake.order_bodies[-1]["client_order_id"]) == 48
    found = await usdc_custodian.conversion(cid)
    assert found is not None and found.order_id == placed.order_id


async def test_lost_answer_is_resolved_by_client_order_id(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.inject("drop_after", method="POST", path_contains="/orders")
    placed = await usdc_custodian.convert("buy", Decimal(5), "usdc-lost")
    assert len(broker_fake.orders) == 1 and placed.order_id in broker_fake.orders
    broker_fake.inject("malformed_after", method="POST", path_contains="/orders")
    second = await usdc_custodian.convert("buy", Decimal(5), "usdc-garbled")
    assert second.order_id in broker_fake.orders and len(broker_fake.orders) == 2


async def test_server_error_with_no_order_stays_ambiguous(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.inject("500", method="POST", path_contains="/orders")
    with pytest.raises(AmbiguousBrokerError, match="usdc-500"):
        await usdc_custodian.convert("buy", Decimal(5), "usdc-500")
    assert broker_fake.orders == {}


async def test_refusals_are_final_and_bad_amounts_never_leave(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    with pytest.raises(FinalBrokerError, match="more than 6 decimal places"):
        await usdc_custodian.convert("buy", Decimal("1.0000001"), "usdc-prec")
    with pytest.raises(FinalBrokerError, match="buy' or 'sell"):
        await usdc_custodian.convert("hold", Decimal(1), "usdc-side")
    with pytest.raises(FinalBrokerError, match="positive"):
        await usdc_custodian.convert("sell", Decimal(0), "usdc-zero")
    assert broker_fake.order_posts == 0
    broker_fake.cash = Decimal(5)
    with pytest.raises(FinalBrokerError, match="insufficient balance"):
        await usdc_custodian.convert("buy", Decimal(6), "usdc-poor")


async def test_rejected_conversion_is_failed_with_the_reason(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.reject_conversions = True
    await usdc_custodian.convert("buy", Decimal(3), "usdc-rej")
    done = await filled(usdc_custodian, "usdc-rej")
    assert done.status == "failed" and done.filled_quantity is None
    assert done.reason is not None and "rejected" in done.reason
    assert broker_fake.usdc == 0


async def test_whitelist_status_and_withdrawal_gate(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.usdc = Decimal(50)
    assert await usdc_custodian.whitelist_status(WALLET) is None
    broker_fake.auto_approve_whitelist = False
    assert await usdc_custodian.add_to_whitelist(WALLET) == "PENDING"
    assert await usdc_custodian.add_to_whitelist(WALLET.lower()) == "PENDING"  # not twice
    assert len(broker_fake.whitelist) == 1 and broker_fake.whitelist[0]["chain"] == "ETH"
    assert await usdc_custodian.whitelist_status(WALLET.upper().replace("0X", "0x")) == "PENDING"
    with pytest.raises(FinalBrokerError, match="not whitelisted"):
        await usdc_custodian.withdraw_usdc(Decimal(1), WALLET)
    assert broker_fake.withdrawal_posts == 0
    broker_fake.set_whitelist_status(WALLET, "APPROVED")
    assert await usdc_custodian.whitelist_status(WALLET.lower()) == "APPROVED"
    with pytest.raises(FinalBrokerError, match="not an EVM address"):
        await usdc_custodian.whitelist_status("0x1234")


async def test_withdrawal_completes_through_send_usdc_minus_network_fee(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    sent: list[tuple[str, Decimal]] = []

    async def send_usdc(address: str, amount: Decimal) -> str:
        sent.append((address, amount))
        return "0x" + "AB" * 32

    broker_fake.send_usdc = send_usdc
    broker_fake.usdc = Decimal(100)
    broker_fake.withdrawal_network_fee = Decimal("0.25")
    await usdc_custodian.add_to_whitelist(WALLET)
    transfer = await usdc_custodian.withdraw_usdc(Decimal("40.123456"), WALLET)
    assert (transfer.direction, transfer.status, transfer.asset) == ("OUTGOING", "PENDING", "USDC")
    assert transfer.amount == Decimal("40.123456") and transfer.tx_hash is None
    assert broker_fake.usdc == Decimal("59.876544")
    done = await settled(usdc_custodian, transfer.transfer_id)
    assert done.status == "COMPLETE" and done.tx_hash == "0x" + "ab" * 32
    assert done.network_fee == Decimal("0.25") and done.to_address == WALLET
    assert sent == [(WALLET, Decimal("39.873456"))]
    with pytest.raises(FinalBrokerError, match="more than 6 decimal places"):
        await usdc_custodian.withdraw_usdc(Decimal("1.0000001"), WALLET)
    with pytest.raises(FinalBrokerError, match="insufficient balance"):
        await usdc_custodian.withdraw_usdc(Decimal(1000), WALLET)


async def test_failed_withdrawal_refunds(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.usdc = Decimal(10)
    broker_fake.fail_withdrawals = True
    await usdc_custodian.add_to_whitelist(WALLET)
    transfer = await usdc_custodian.withdraw_usdc(Decimal(4), WALLET)
    done = await settled(usdc_custodian, transfer.transfer_id)
    assert done.status == "FAILED" and done.tx_hash is None
    assert broker_fake.usdc == Decimal(10)


async def test_withdrawal_transport_failures_are_ambiguous(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.usdc = Decimal(10)
    await usdc_custodian.add_to_whitelist(WALLET)
    broker_fake.inject("drop_after", method="POST", path_contains="/wallets/transfers")
    with pytest.raises(AmbiguousBrokerError, match="look in transfers"):
        await usdc_custodian.withdraw_usdc(Decimal(2), WALLET)
    (created,) = await usdc_custodian.transfers()  # it did happen: found by listing
    assert created.amount == Decimal(2) and created.direction == "OUTGOING"
    broker_fake.inject("503", method="POST", path_contains="/wallets/transfers")
    with pytest.raises(AmbiguousBrokerError):
        await usdc_custodian.withdraw_usdc(Decimal(2), WALLET)
    broker_fake.inject(
        "raw", method="POST", path_contains="/wallets/transfers", body=b'{"id": "x"}'
    )
    with pytest.raises(AmbiguousBrokerError, match="unreadable answer"):
        await usdc_custodian.withdraw_usdc(Decimal(2), WALLET)
    assert broker_fake.withdrawal_posts == 1  # the faults before the handler created nothing


async def test_deposit_address_and_ugly_wallet_replies(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.deposit_address = "0x00000000000000000000000000000000000D3905"
    assert await usdc_custodian.deposit_address() == broker_fake.deposit_address
    assert "asset=USDC&network=ethereum" in broker_fake.requests[-1][1]
    ugly = {
        "/wallets/transfers": (b'[{"id": "t-1", "direction": "SIDEWAYS"}]', "direction"),
        "/wallets/whitelists": (b'{"entries": []}', "expected a JSON array"),
        "/wallets": (b'{"address": "not-an-address"}', "not an EVM address"),
    }
    calls = {
        "/wallets/transfers": usdc_custodian.transfers,
        "/wallets/whitelists": lambda: usdc_custodian.whitelist_status(WALLET),
        "/wallets": usdc_custodian.deposit_address,
    }
    for path, (body, message) in ugly.items():
        broker_fake.inject("raw", method="GET", path_contains=path, body=body)
        with pytest.raises(MalformedReplyError, match=message):
            await calls[path]()
    broker_fake.inject("raw", method="GET", path_contains="/wallets/transfers", body=b"[1, 2]")
    with pytest.raises(MalformedReplyError, match="transfer"):
        await usdc_custodian.transfers()
    assert await usdc_custodian.transfers() == []


async def test_plugin_hook_returns_the_usdc_custodian(
    broker_fake: FakeAlpacaBroker, tmp_path: Path
) -> None:
    (tmp_path / "fills.jsonl").touch()
    path = tmp_path / "config.toml"
    path.write_text(
        'database_url = "st0x.db"\n[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        '[broker]\ntype = "alpaca-broker-api"\n'
        f'api_key = "{BROKER_KEY}"\napi_secret = "{BROKER_SECRET}"\n'
        'account_id = "5fc0795e-1f16-40cc-aa90-ede67c39d7a9"\n'
        f'base_url = "{broker_fake.base_url}"\n'
    )
    custodian = st0x_custodian(load_config(path, load_registry(), env={}))
    assert isinstance(custodian, UsdcCustodian)
    try:
        assert await custodian.deposit_address() == broker_fake.deposit_address
    finally:
        await custodian.close()

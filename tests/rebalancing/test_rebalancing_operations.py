"""Mint and redemption against real anvil and the fake Broker API (in process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from rebalancing_chain import REDEMPTION_WALLET, Env, make_env

from st0x_liquidity.rebalancing.chain import DEPOSIT_V2_TOPIC, TRANSFER_TOPIC, WITHDRAW_V2_TOPIC
from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.operations import OperationRunner

LAYOUTS = ["v5", "v6", "v6-vaultless"]


@pytest.fixture
def layout() -> str:
    return "v5"


@pytest.fixture
async def env(tmp_path: Path, layout: str) -> AsyncIterator[Env]:
    made = await make_env(tmp_path, layout=layout)
    try:
        yield made
    finally:
        await made.close()


async def _runner(env: Env) -> tuple[RebalancingLog, OperationRunner]:
    log = RebalancingLog(env.tmp / "st0x.db")
    await log.open()
    return log, await env.runner(log)


async def _close(log: RebalancingLog, runner: OperationRunner) -> None:
    await runner.chain.close()
    await runner.custodian.close()
    await log.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("layout", LAYOUTS)
async def test_mint_then_redeem_move_real_tokens(env: Env) -> None:
    """V5: deposit3/withdraw3; V6: deposit4/withdraw4; V6 vaultless (vault id 0): the
    tokens stay in the wallet the orders trade from, and no vault is called."""
    log, runner = await _runner(env)
    try:
        op = await runner.request("mint", "AAPL", Decimal("5.5"), "cli")
        state = await runner.run(op)
        assert state.status == "completed", state.ended
        assert await env.onchain() == Decimal("5.5")
        assert await env.balance(env.wallet) == (Decimal("5.5") if env.vaultless else 0)
        assert env.fake.positions["AAPL"] == Decimal("94.5")
        assert len([r for r in env.fake.tokenization.values() if r["type"] == "mint"]) == 1
        deposits = 0 if env.vaultless else 1
        assert len(await env.logs(DEPOSIT_V2_TOPIC, env.orderbook)) == deposits
        assert ("tx_hash" in state.done["deposit"]) != env.vaultless

        op2 = await runner.request("redeem", "AAPL", Decimal(2), "cli")
        state2 = await runner.run(op2)
        assert state2.status == "completed", state2.ended
        assert await env.onchain() == Decimal("3.5")
        assert len(await env.logs(WITHDRAW_V2_TOPIC, env.orderbook)) == deposits
        assert await env.balance(REDEMPTION_WALLET) == Decimal(2)
        assert env.fake.positions["AAPL"] == Decimal("96.5")

        book = await InventoryKeeper(log).refresh()
        aapl = book.assets["AAPL"]
        # moves only (no fills, no snapshot): +5.5 -2 onchain, -5.5 +2 offchain, nothing in flight
        assert (aapl.onchain.available, aapl.onchain.inflight) == (Decimal("3.5"), 0)
        assert (aapl.offchain.available, aapl.offchain.inflight) == (Decimal("-3.5"), 0)
        assert aapl.active_operation is None
    finally:
        await _close(log, runner)


@pytest.mark.asyncio
@pytest.mark.parametrize("layout", ["v5", "v6-vaultless"])
async def test_redeem_more_than_the_vault_holds_withdraws_what_is_there(env: Env) -> None:
    log, runner = await _runner(env)
    try:
        assert (
            await runner.run(await runner.request("mint", "AAPL", Decimal(1), "cli"))
        ).status == "completed"
        state = await runner.run(await runner.request("redeem", "AAPL", Decimal(3), "cli"))
        assert state.status == "completed"
        assert state.done["withdraw"]["quantity"] == "1"
        assert await env.balance(REDEMPTION_WALLET) == Decimal(1)
        book = await InventoryKeeper(log).refresh()
        assert book.assets["AAPL"].onchain.inflight == 0
    finally:
        await _close(log, runner)


@pytest.mark.asyncio
async def test_rejected_mint_releases_the_shares(env: Env) -> None:
    env.fake.reject_mints = True
    log, runner = await _runner(env)
    try:
        state = await runner.run(await runner.request("mint", "AAPL", Decimal(5), "cli"))
        assert state.status == "failed" and "rejected" in (state.ended.reason or "")
        assert env.fake.positions["AAPL"] == Decimal(100)
        aapl = (await InventoryKeeper(log).refresh()).assets["AAPL"]
        assert (aapl.offchain.available, aapl.offchain.inflight) == (0, 0)
    finally:
        await _close(log, runner)


@pytest.mark.asyncio
async def test_insufficient_position_is_final(env: Env) -> None:
    log, runner = await _runner(env)
    try:
        state = await runner.run(await runner.request("mint", "AAPL", Decimal(500), "cli"))
        assert state.status == "failed"
        assert "insufficient position" in (state.ended.reason or "")
        assert (await InventoryKeeper(log).refresh()).assets["AAPL"].offchain.inflight == 0
    finally:
        await _close(log, runner)


@pytest.mark.asyncio
@pytest.mark.parametrize("layout", ["v5", "v6"])
async def test_reverting_deposit_ends_with_the_decoded_reason(env: Env) -> None:
    env.mint_to = REDEMPTION_WALLET  # the issuer sends the tokens elsewhere: deposit3 cannot pull
    log, runner = await _runner(env)
    try:
        state = await runner.run(await runner.request("mint", "AAPL", Decimal(5), "cli"))
        assert state.status == "failed"
        assert state.ended is not None and state.ended.reason == "deposit: balance"
        aapl = (await InventoryKeeper(log).refresh()).assets["AAPL"]
        assert (aapl.onchain.available, aapl.onchain.inflight) == (Decimal(5), 0)
        assert not await env.logs(DEPOSIT_V2_TOPIC, env.orderbook)
    finally:
        await _close(log, runner)


@pytest.mark.asyncio
async def test_alpaca_down_ends_the_mint_cleanly(env: Env) -> None:
    log, runner = await _runner(env)
    runner.retry_delay = 0.05
    await env.fake.stop()
    try:
        state = await runner.run(await runner.request("mint", "AAPL", Decimal(5), "cli"))
        assert state.status == "failed" and "unreachable" in (state.ended.reason or "")
        aapl = (await InventoryKeeper(log).refresh()).assets["AAPL"]
        assert (aapl.offchain.available, aapl.offchain.inflight) == (0, 0)
        assert not await env.logs(TRANSFER_TOPIC, env.token)
    finally:
        await _close(log, runner)  # env.close() stopping the fake again is harmless


def test_quantities_with_more_than_18_decimals_are_refused() -> None:
    from st0x_liquidity.rebalancing.operations import QuantityError, to_units

    assert to_units(Decimal("1.5")) == 15 * 10**17
    with pytest.raises(QuantityError):
        to_units(Decimal("1.0000000000000000001"))


@pytest.mark.asyncio
@pytest.mark.parametrize("layout", LAYOUTS)
async def test_snapshot_counts_the_wallet_for_vaultless_orders(env: Env) -> None:
    """The onchain snapshot: vault balance (vaultBalance2) plus wallet; a vaultless V6 order's
    inventory is the wallet's balance only (vault id 0 is not a vault)."""
    from st0x_liquidity.rebalancing.inventory import InventoryBook
    from st0x_liquidity.rebalancing.runtime import onchain_reader

    log, runner = await _runner(env)
    try:
        state = await runner.run(await runner.request("mint", "AAPL", Decimal("5.5"), "cli"))
        assert state.status == "completed", state.ended
        vaults, wallets = await onchain_reader(runner, InventoryBook())()
        in_vault = Decimal(0) if env.vaultless else Decimal("5.5")
        assert (vaults["AAPL"], wallets["AAPL"]) == (in_vault, Decimal("5.5") - in_vault)
    finally:
        await _close(log, runner)

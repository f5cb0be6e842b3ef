"""A conversion past its deadline is cancelled, and whatever filled is accounted for;
a broker transfer whose status goes back is reported loudly and still followed.

Against the fake Broker API (whose ``DELETE …/orders/{id}`` may lose the race to a
fill, whole or partial) on the two-anvil CCTP environment.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
from rebalancing_support import with_database
from usdc_env import UsdcEnv, make_usdc_env, run_usdc, usdc_inventory, write_config

from st0x_liquidity.domain.numbers import ZERO
from st0x_liquidity.protocols import (
    CashConversion,
    ConversionCanceller,
    UsdcCustodian,
    WalletTransfer,
)
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.usdc_runner import UsdcRunner


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[UsdcEnv]:
    async with with_database(await make_usdc_env(tmp_path)) as made:
        write_config(made, conversion_timeout="0.3")
        made.fake.conversion_delay = 30.0  # never fills by itself within the test
        yield made


@pytest.fixture
async def runner(env: UsdcEnv, log: RebalancingLog) -> AsyncIterator[UsdcRunner]:
    made = await env.runner(log)
    custodian = made.custodian
    try:
        yield made
    finally:
        await made.close()
        await custodian.close()


async def test_a_conversion_cancelled_with_nothing_filled_ends_the_operation(
    env: UsdcEnv, log: RebalancingLog, runner: UsdcRunner
) -> None:
    state = await run_usdc(runner, "usdc_to_onchain", "100")
    assert state.status == "failed"
    assert state.ended is not None and state.ended.reason is not None
    assert "not filled within 0.3s: cancelled, nothing converted" in state.ended.reason
    assert env.fake.cancel_requests == 1
    assert [o.status for o in env.fake.orders.values()] == ["canceled"]
    assert env.fake.cash == Decimal(1000) and env.fake.usdc == 0
    assert await usdc_inventory(log) == (ZERO, ZERO, ZERO, ZERO)  # the cash is available again


async def test_a_fill_that_beats_the_cancel_goes_on_to_the_vault(
    env: UsdcEnv, log: RebalancingLog, runner: UsdcRunner
) -> None:
    env.fake.fill_on_cancel = Decimal(1)
    state = await run_usdc(runner, "usdc_to_onchain", "100")
    assert state.status == "completed", state.ended
    assert state.done["convert"]["filled"] == "100"
    assert env.fake.cash == Decimal(900) and env.fake.usdc == 0
    assert await env.vault() == Decimal("99.99")
    assert await usdc_inventory(log) == (Decimal("99.99"), ZERO, Decimal(-100), ZERO)


async def test_a_buy_cancelled_part_filled_moves_the_filled_part(
    env: UsdcEnv, log: RebalancingLog, runner: UsdcRunner
) -> None:
    env.fake.fill_on_cancel = Decimal("0.5")
    state = await run_usdc(runner, "usdc_to_onchain", "100")
    assert state.status == "completed", state.ended
    assert state.done["convert"]["filled"] == "50"
    # 50 dollars converted and moved, the other 50 never left the cash
    assert env.fake.cash == Decimal(950) and env.fake.usdc == 0
    assert await env.vault() == Decimal("49.995")
    assert await usdc_inventory(log) == (Decimal("49.995"), ZERO, Decimal(-50), ZERO)


async def test_a_sale_cancelled_part_filled_leaves_the_rest_as_usdc_at_the_broker(
    env: UsdcEnv, log: RebalancingLog, runner: UsdcRunner, caplog: pytest.LogCaptureFixture
) -> None:
    await env.deposit_to_vault(Decimal(100))
    env.fake.fill_on_cancel = Decimal("0.5")
    with caplog.at_level(logging.WARNING):
        state = await run_usdc(runner, "usdc_to_offchain", "100")
    assert state.status == "completed", state.ended
    credited = Decimal(state.done["detect_deposit"]["credited"])
    assert credited == Decimal("99.987")  # 100 less Circle's 1.3 bp
    sold, unsold = (
        Decimal(state.done["convert"]["filled"]),
        Decimal(state.done["convert"]["unsold"]),
    )
    assert sold + unsold == credited and sold == credited / 2
    assert env.fake.usdc == unsold and env.fake.cash == Decimal(1000) + sold
    assert any("left unsold at the broker" in r.getMessage() for r in caplog.records)
    # the model counts USDC at the broker like cash (the executor does too): no drift
    assert await usdc_inventory(log) == (Decimal(-100), ZERO, credited, ZERO)


class NoCancel:
    """A USDC custodian without ``cancel_conversion`` (the method is optional)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def convert(self, side: str, quantity: Decimal, client_order_id: str) -> CashConversion:
        found: CashConversion = await self.inner.convert(side, quantity, client_order_id)
        return found

    async def conversion(self, client_order_id: str) -> CashConversion | None:
        found: CashConversion | None = await self.inner.conversion(client_order_id)
        return found

    async def whitelist_status(self, address: str) -> str | None:
        found: str | None = await self.inner.whitelist_status(address)
        return found

    async def withdraw_usdc(self, amount: Decimal, address: str) -> WalletTransfer:
        found: WalletTransfer = await self.inner.withdraw_usdc(amount, address)
        return found

    async def transfers(self) -> list[WalletTransfer]:
        found: list[WalletTransfer] = await self.inner.transfers()
        return found

    async def deposit_address(self) -> str:
        found: str = await self.inner.deposit_address()
        return found

    async def close(self) -> None:
        await self.inner.close()


async def test_a_custodian_that_cannot_cancel_leaves_the_order_and_says_so(
    env: UsdcEnv, log: RebalancingLog, runner: UsdcRunner
) -> None:
    plain = NoCancel(runner.custodian)
    assert isinstance(plain, UsdcCustodian) and not isinstance(plain, ConversionCanceller)
    runner.custodian = cast(Any, plain)
    assert runner.usdc_ready
    state = await run_usdc(runner, "usdc_to_onchain", "100")
    assert state.status == "failed"
    assert state.ended is not None and state.ended.reason is not None
    assert "cannot cancel it, so it may still fill" in state.ended.reason
    assert env.fake.cancel_requests == 0


class Regressing(NoCancel):
    """Shows the withdrawal PROCESSING, then PENDING again, then as the broker has it."""

    def __init__(self, inner: Any, statuses: list[str]) -> None:
        super().__init__(inner)
        self.statuses = statuses

    async def transfers(self) -> list[WalletTransfer]:
        listed = await super().transfers()
        if self.statuses and any(t.direction == "OUTGOING" for t in listed):
            status = self.statuses.pop(0)
            listed = [
                attrs.evolve(t, status=status) if t.direction == "OUTGOING" else t for t in listed
            ]
        return listed


async def test_a_transfer_status_regression_is_an_alert_and_polling_goes_on(
    env: UsdcEnv, log: RebalancingLog, runner: UsdcRunner, caplog: pytest.LogCaptureFixture
) -> None:
    env.fake.conversion_delay = 0.0  # fills at once (and a cancel after 0.3 s finds it filled)
    runner.custodian = cast(Any, Regressing(runner.custodian, ["PROCESSING", "PENDING"]))
    with caplog.at_level(logging.ERROR):
        state = await run_usdc(runner, "usdc_to_onchain", "100")
    assert state.status == "completed", state.ended
    alerts = [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]
    assert len(alerts) == 1
    assert "status went back from PROCESSING to PENDING" in alerts[0]
    assert "reaches the wallet on Ethereum" in alerts[0]  # where the funds are
    assert await env.vault() == Decimal("99.99")

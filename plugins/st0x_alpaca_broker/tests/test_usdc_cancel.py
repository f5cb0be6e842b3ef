"""Cancelling a USDCUSD conversion (DELETE …/orders/{id}) against the fake over HTTP.

Three outcomes a caller must tell apart: cancelled with nothing filled, a fill that
beat the cancel (Alpaca answers 422 "not cancelable"), a partial fill then cancelled.
"""

from __future__ import annotations

from decimal import Decimal

from st0x_alpaca_broker.custody import AlpacaCustodian
from st0x_testing.fake_alpaca_broker import FakeAlpacaBroker

from st0x_liquidity.protocols import ConversionCanceller, UsdcCustodian


def test_the_broker_custodian_can_cancel(usdc_custodian: AlpacaCustodian) -> None:
    assert isinstance(usdc_custodian, UsdcCustodian)
    assert isinstance(usdc_custodian, ConversionCanceller)


async def test_an_open_conversion_is_cancelled_and_nothing_moves(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.cash = Decimal(1000)
    broker_fake.conversion_delay = 30.0
    await usdc_custodian.convert("buy", Decimal(100), "cancel-open")
    after = await usdc_custodian.cancel_conversion("cancel-open")
    assert after is not None
    assert after.status == "cancelled" and after.filled_quantity is None
    assert broker_fake.cash == Decimal(1000) and broker_fake.usdc == 0
    assert broker_fake.cancel_requests == 1
    again = await usdc_custodian.cancel_conversion("cancel-open")  # ended: no second DELETE
    assert again is not None and again.status == "cancelled"
    assert broker_fake.cancel_requests == 1


async def test_a_fill_that_beats_the_cancel_is_returned_filled(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.cash = Decimal(1000)
    broker_fake.conversion_delay = 30.0
    broker_fake.fill_on_cancel = Decimal(1)  # the fill lands first: 422 not cancelable
    await usdc_custodian.convert("buy", Decimal(100), "cancel-late")
    after = await usdc_custodian.cancel_conversion("cancel-late")
    assert after is not None
    assert after.status == "filled" and after.filled_quantity == Decimal(100)
    assert broker_fake.cash == Decimal(900) and broker_fake.usdc == Decimal(100)


async def test_a_partial_fill_then_cancel_reports_the_filled_part(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    broker_fake.cash = Decimal(0)
    broker_fake.usdc = Decimal(100)
    broker_fake.conversion_delay = 30.0
    broker_fake.fill_on_cancel = Decimal("0.25")
    await usdc_custodian.convert("sell", Decimal(100), "cancel-part")
    after = await usdc_custodian.cancel_conversion("cancel-part")
    assert after is not None
    assert after.status == "cancelled" and after.filled_quantity == Decimal(25)
    assert broker_fake.usdc == Decimal(75) and broker_fake.cash == Decimal(25)


async def test_cancelling_an_unknown_conversion_is_none(
    broker_fake: FakeAlpacaBroker, usdc_custodian: AlpacaCustodian
) -> None:
    assert await usdc_custodian.cancel_conversion("never-placed") is None
    assert broker_fake.cancel_requests == 0

"""Triggers are pure: property tests over random inventories and bands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from st0x_liquidity.rebalancing.inventory import AssetInventory, Balance
from st0x_liquidity.rebalancing.triggers import Action, AssetRules, Band, decide

NOW = datetime(2026, 1, 2, 15, tzinfo=UTC)
amounts = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False)
fractions = st.decimals(min_value=Decimal("0.05"), max_value=Decimal("0.95"), places=2)


def rules(target: str = "0.5", deviation: str = "0.2", minimum: str = "1") -> AssetRules:
    return AssetRules(Band(Decimal(target), Decimal(deviation)), Decimal(minimum), timedelta(0))


def inv(on: str, off: str, **kw: object) -> AssetInventory:
    return AssetInventory("AAPL", Balance(Decimal(on)), Balance(Decimal(off)), **kw)  # type: ignore[arg-type]


def test_reference_example_mints_thirty() -> None:
    d = decide(inv("20", "80"), rules(), NOW)
    assert (d.action, d.quantity) == (Action.MINT, Decimal(30))


def test_too_much_onchain_redeems_back_to_target() -> None:
    d = decide(inv("90", "10"), rules(), NOW)
    assert (d.action, d.quantity) == (Action.REDEEM, Decimal(40))


def test_band_edges_are_inside() -> None:
    assert decide(inv("30", "70"), rules(), NOW).action is None
    assert decide(inv("70", "30"), rules(), NOW).action is None


def test_in_flight_cooldown_minimum_and_empty() -> None:
    assert decide(inv("0", "100", active_operation="x"), rules(), NOW).action is None
    busy = AssetInventory("AAPL", Balance(Decimal(0), Decimal(1)), Balance(Decimal(100)))
    assert decide(busy, rules(), NOW).action is None
    cooling = inv("0", "100", last_operation_end=NOW - timedelta(seconds=10))
    slow = AssetRules(Band(Decimal("0.5"), Decimal("0.2")), Decimal(1), timedelta(minutes=5))
    assert decide(cooling, slow, NOW).reason.startswith("cooling")
    assert decide(cooling, slow, NOW + timedelta(minutes=5)).action is Action.MINT
    assert decide(inv("0", "1"), rules(minimum="5"), NOW).action is None
    assert decide(inv("0", "0"), rules(), NOW).reason == "no inventory"


def test_usdc_maps_to_usdc_actions() -> None:
    usdc = AssetInventory("USDC", Balance(Decimal(100)), Balance(Decimal(900)))
    d = decide(usdc, rules(deviation="0.3"), NOW)
    assert (d.action, d.quantity) == (Action.USDC_TO_ONCHAIN, Decimal(400))


@settings(max_examples=400)
@given(on=amounts, off=amounts, target=fractions, deviation=fractions)
def test_decision_brings_share_back_to_target(
    on: Decimal, off: Decimal, target: Decimal, deviation: Decimal
) -> None:
    deviation = min(deviation, target, 1 - target)
    r = AssetRules(Band(target, deviation), Decimal(0), timedelta(0), places=9)
    before = AssetInventory("AAPL", Balance(on), Balance(off))
    d = decide(before, r, NOW)
    share = before.onchain_share
    if share is None or r.band.lower <= share <= r.band.upper:
        assert d.action is None
        return
    if d.action is None:  # rounded to nothing
        assert d.quantity == 0
        return
    assert d.quantity > 0
    if d.action is Action.MINT:
        assert d.quantity <= off
        on, off = on + d.quantity, off - d.quantity
    else:
        assert d.action is Action.REDEEM
        assert d.quantity <= on
        on, off = on - d.quantity, off + d.quantity
    after = AssetInventory("AAPL", Balance(on), Balance(off)).onchain_share
    assert after is not None
    # back at the target, up to the quantity rounding (9 places)
    assert abs(after - target) * (on + off) <= Decimal("1e-9")
    assert r.band.lower <= after <= r.band.upper


@given(on=amounts, off=amounts, inflight=st.decimals(min_value="0.000001", max_value=10, places=6))
def test_never_while_in_flight(on: Decimal, off: Decimal, inflight: Decimal) -> None:
    busy = AssetInventory("AAPL", Balance(on), Balance(off, inflight))
    assert decide(busy, rules(), NOW).action is None

"""Property tests of the pre-trade risk check (domain/risk.py)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.domain.accumulator import HedgeDecision
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.numbers import add, mul
from st0x_liquidity.domain.risk import (
    RiskLimits,
    TradingState,
    check_hedge,
    reduces,
    signed,
)

UNLIMITED = Decimal("999999999999999999")
DEFAULTS = RiskLimits(Decimal(10000), Decimal(250000), Decimal(1000000), Decimal(2500000))

quantities = st.decimals(
    min_value=Decimal("0.000000001"), max_value=UNLIMITED, places=9, allow_nan=False
)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100000), places=2)
positions = st.decimals(min_value=-Decimal(10**9), max_value=Decimal(10**9), places=9)
limit_values = st.decimals(min_value=Decimal(1), max_value=UNLIMITED, places=2)
limits = st.builds(RiskLimits, limit_values, limit_values, limit_values, limit_values)
decisions = st.builds(HedgeDecision, st.sampled_from(Direction), quantities)
states = st.sampled_from(TradingState)
today = st.decimals(min_value=Decimal(0), max_value=Decimal(10**12), places=2)


def breaks(
    limit: str,
    d: HedgeDecision,
    price: Decimal,
    lim: RiskLimits,
    state: TradingState,
    position: Decimal,
    hedged_today: Decimal,
) -> bool:
    """Independent statement of each limit: does the hedge break it?"""
    notional = mul(d.quantity, price)
    after = add(position, signed(d.side, d.quantity))
    if limit == "state":
        return state is TradingState.HALTED or (
            state is TradingState.REDUCING
            and not (after.copy_abs() < position.copy_abs() and after * position >= 0)
        )
    if limit == "max_order_quantity":
        return d.quantity > lim.max_order_quantity
    if limit == "max_order_notional":
        return notional > lim.max_order_notional
    if limit == "max_net_exposure":
        return (
            mul(after.copy_abs(), price) > lim.max_net_exposure
            and after.copy_abs() > position.copy_abs()
        )
    assert limit == "max_daily_notional"
    return add(hedged_today, notional) > lim.max_daily_notional


LIMITS = (
    "state",
    "max_order_quantity",
    "max_order_notional",
    "max_net_exposure",
    "max_daily_notional",
)


@given(decisions, prices, limits, states, positions, today)
def test_allowed_exactly_when_no_limit_is_broken(
    d: HedgeDecision,
    price: Decimal,
    lim: RiskLimits,
    state: TradingState,
    position: Decimal,
    hedged_today: Decimal,
) -> None:
    verdict = check_hedge(
        d, price, limits=lim, state=state, position=position, hedged_today=hedged_today
    )
    broken = [name for name in LIMITS if breaks(name, d, price, lim, state, position, hedged_today)]
    if verdict.allowed:
        assert broken == []
        assert verdict.limit is None and verdict.reason is None
    else:
        assert verdict.limit == broken[0]  # the first broken limit, in a fixed order
        assert verdict.reason


@given(decisions, prices, limits, limits, positions, today)
def test_looser_limits_never_block_what_tighter_ones_allow(
    d: HedgeDecision,
    price: Decimal,
    a: RiskLimits,
    b: RiskLimits,
    position: Decimal,
    hedged_today: Decimal,
) -> None:
    tight = RiskLimits(*(min(x, y) for x, y in zip(_values(a), _values(b), strict=True)))
    loose = RiskLimits(*(max(x, y) for x, y in zip(_values(a), _values(b), strict=True)))
    for state in TradingState:
        kwargs = {"state": state, "position": position, "hedged_today": hedged_today}
        if check_hedge(d, price, limits=tight, **kwargs).allowed:  # type: ignore[arg-type]
            assert check_hedge(d, price, limits=loose, **kwargs).allowed  # type: ignore[arg-type]


@given(decisions, prices, limits, positions, today)
def test_halted_blocks_everything(
    d: HedgeDecision, price: Decimal, lim: RiskLimits, position: Decimal, hedged_today: Decimal
) -> None:
    verdict = check_hedge(
        d,
        price,
        limits=lim,
        state=TradingState.HALTED,
        position=position,
        hedged_today=hedged_today,
        state_reason="operator",
    )
    assert not verdict.allowed and verdict.limit == "state"
    assert verdict.reason is not None and "operator" in verdict.reason


@given(positions, positions)
def test_reducing_never_grows_or_flips_the_position(position: Decimal, change: Decimal) -> None:
    if reduces(position, change):
        after = position + change
        assert abs(after) < abs(position)
        assert after == 0 or (after > 0) == (position > 0)


def test_the_replay_line_of_a_billion_billion_shares_is_blocked_by_default() -> None:
    huge = HedgeDecision(Direction.SELL, Decimal("1000000000000000009.5"))
    verdict = check_hedge(
        huge,
        Decimal("150"),
        limits=DEFAULTS,
        state=TradingState.ACTIVE,
        position=Decimal(0),
        hedged_today=Decimal(0),
    )
    assert not verdict.allowed
    assert verdict.limit == "max_order_quantity"
    assert verdict.reason == (
        "order of 1000000000000000009.5 shares is above max_order_quantity 10000"
    )


def test_reducing_allows_an_order_that_shrinks_the_position() -> None:
    sell = HedgeDecision(Direction.SELL, Decimal(3))
    common = {"limits": DEFAULTS, "hedged_today": Decimal(0)}
    assert check_hedge(
        sell, Decimal(100), state=TradingState.REDUCING, position=Decimal(5), **common
    ).allowed
    flip = check_hedge(
        sell, Decimal(100), state=TradingState.REDUCING, position=Decimal(2), **common
    )
    assert flip.limit == "state"
    assert "would not shrink the broker position of 2" in (flip.reason or "")


def test_exposure_limit_lets_an_order_that_lowers_exposure_through() -> None:
    lim = RiskLimits(UNLIMITED, UNLIMITED, Decimal(1000), UNLIMITED)
    common = {"limits": lim, "state": TradingState.ACTIVE, "hedged_today": Decimal(0)}
    # 20 shares long at $100 = $2000, above the $1000 limit: selling 5 lowers it.
    assert check_hedge(
        HedgeDecision(Direction.SELL, Decimal(5)), Decimal(100), position=Decimal(20), **common
    ).allowed
    grows = check_hedge(
        HedgeDecision(Direction.BUY, Decimal(5)), Decimal(100), position=Decimal(20), **common
    )
    assert grows.limit == "max_net_exposure"


def test_daily_limit_counts_what_was_hedged_today() -> None:
    lim = RiskLimits(UNLIMITED, UNLIMITED, UNLIMITED, Decimal(1000))
    d = HedgeDecision(Direction.BUY, Decimal(2))
    common = {"limits": lim, "state": TradingState.ACTIVE, "position": Decimal(0)}
    assert check_hedge(d, Decimal(100), hedged_today=Decimal(800), **common).allowed
    blocked = check_hedge(d, Decimal(100), hedged_today=Decimal("800.01"), **common)
    assert blocked.limit == "max_daily_notional"
    assert blocked.reason == (
        "order notional $200 is above what max_daily_notional $1000 leaves today ($199.99)"
    )


def _values(lim: RiskLimits) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return (
        lim.max_order_quantity,
        lim.max_order_notional,
        lim.max_net_exposure,
        lim.max_daily_notional,
    )

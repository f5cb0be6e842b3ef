"""Pricing an extended-hours limit (domain/limits.py) and its slippage in the P&L (domain/pnl.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.limits import (
    Reference,
    choose_reference,
    flatten_close,
    flatten_progress,
    loss_bps,
    price_limit,
    ramped_offset,
)
from st0x_liquidity.domain.pnl import limit_slippage
from st0x_liquidity.domain.sessions import Session, SessionWindow

T = datetime(2026, 3, 6, 20, tzinfo=UTC)


def test_the_reference_chain_takes_the_first_usable_price() -> None:
    d = Decimal
    assert choose_reference(d("101"), d("100"), d("99")) == Reference(d("101"), "pyth")
    assert choose_reference(None, d("100"), d("99")) == Reference(d("100"), "onchain")
    assert choose_reference(None, None, d("99")) == Reference(d("99"), "broker_mark")
    assert choose_reference(d("0"), d("NaN"), None) is None


def test_flatten_applies_before_a_long_close_only() -> None:
    post = SessionWindow(Session.POST, T - timedelta(hours=4), T)
    monday = SessionWindow(Session.PRE, T + timedelta(days=2, hours=8), T + timedelta(days=3))
    tomorrow = SessionWindow(Session.PRE, T + timedelta(hours=8), T + timedelta(hours=13))
    assert flatten_close(post, monday) == T
    assert flatten_close(post, None) == T  # the calendar ends: flatten rather than not
    assert flatten_close(post, tomorrow) is None
    assert flatten_progress(T - timedelta(seconds=901), T, 900) is None
    assert flatten_progress(T - timedelta(seconds=900), T, 900) == 0.0
    assert flatten_progress(T - timedelta(seconds=300), T, 900) == pytest.approx(2 / 3)
    assert flatten_progress(T, T, 900) == 1.0
    assert flatten_progress(T - timedelta(seconds=10), T, 0) is None


@given(st.floats(0, 1), st.integers(0, 500), st.integers(0, 500))
def test_the_ramp_stays_between_base_and_max(progress: float, base: int, extra: int) -> None:
    low, high = Decimal(base), Decimal(base + extra)
    offset = ramped_offset(low, high, progress)
    assert low <= offset <= high
    assert ramped_offset(low, high, None) == low
    assert ramped_offset(low, high, 1.0) == high


@given(
    st.floats(0, 1),
    st.floats(0, 1),
    st.decimals(0, 5000, places=3),
    st.decimals(0, 5000, places=3),
)
def test_the_ramp_never_narrows_the_offset(
    p1: float, p2: float, base: Decimal, maximum: Decimal
) -> None:
    """A symbol's own offset may be above the section's maximum: flattening must not
    make its limits less marketable than outside the window."""
    early, late = sorted((p1, p2))
    assert base <= ramped_offset(base, maximum, early) <= ramped_offset(base, maximum, late)
    assert ramped_offset(base, maximum, late) <= max(base, maximum)


def test_loss_is_measured_against_the_onchain_fill() -> None:
    assert loss_bps(Decimal("99"), Decimal("100"), Direction.SELL) == 100
    assert loss_bps(Decimal("101"), Decimal("100"), Direction.BUY) == 100
    assert loss_bps(Decimal("101"), Decimal("100"), Direction.SELL) == -100


def test_a_limit_beyond_the_bound_is_blocked_and_says_why() -> None:
    ref = Reference(Decimal("95"), "pyth")
    priced = price_limit(
        ref, Direction.SELL, Decimal(50), onchain=Decimal(100), max_loss_bps=Decimal(300)
    )
    assert priced.limit == Decimal("94.52")
    assert priced.blocked is not None and "548.0 bps" in priced.blocked
    ok = price_limit(
        ref, Direction.SELL, Decimal(50), onchain=Decimal(95), max_loss_bps=Decimal(300)
    )
    assert ok.blocked is None and ok.loss_bps is not None and ok.loss_bps < 300
    free = price_limit(ref, Direction.SELL, Decimal(50), onchain=None, max_loss_bps=Decimal(0))
    assert free.blocked is None


def test_limit_slippage_per_symbol() -> None:
    d = Decimal
    result = limit_slippage(
        [
            ("AAPL", Direction.SELL, d("10"), d("99.5"), d("100")),  # sold 0.5 below: cost 5
            ("AAPL", Direction.BUY, d("2"), d("99"), d("100")),  # bought 1 below: gain 2
            ("AAPL", Direction.SELL, d("0"), None, d("100")),  # unfilled: nothing
            ("TSLA", Direction.BUY, d("1"), d("201"), d("200")),
        ]
    )
    aapl = result["AAPL"]
    assert (aapl.orders, aapl.shares, aapl.usd, aapl.notional) == (2, d(12), d(3), d(1200))
    assert aapl.bps == d(25)
    assert result["TSLA"].usd == 1

"""Inventory from Schwab's account endpoint (``?fields=positions``) against the fake."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from st0x_schwab.executor import SchwabExecutor
from st0x_schwab.parsing import SchwabReplyError, parse_account_positions
from st0x_testing.fake_schwab import FakeSchwab, Fault

from st0x_liquidity import (
    BrokerError,
    Direction,
    MarketOrder,
    RetryableBrokerError,
    Symbol,
)


def order(qty: str, side: Direction, cid: str) -> MarketOrder:
    return MarketOrder(Symbol("AAPL"), side, Decimal(qty), cid, Decimal("190"))


async def test_inventory_follows_fills_and_keeps_stocks_and_etfs(
    authorized: SchwabExecutor, fake: FakeSchwab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bought = await authorized.place_market_order(order("3", Direction.BUY, "c1"))
    fake.fill(int(bought.broker_order_id), "190.25")
    sold = await authorized.place_market_order(order("1", Direction.SELL, "c2"))
    fake.fill(int(sold.broker_order_id), "191.5")
    fake.set_position("SPY", 5, asset_type="COLLECTIVE_INVESTMENT")
    fake.set_position("BRK/B", 2)
    fake.set_position("TSLA", -4)
    fake.set_position("AAPL  260320C00200000", 1, asset_type="OPTION")

    inventory = await authorized.inventory()

    held = {str(p.symbol): p.quantity for p in inventory.positions}
    assert held == {
        "AAPL": Decimal(2),
        "BRK.B": Decimal(2),
        "SPY": Decimal(5),
        "TSLA": Decimal(-4),
    }
    aapl = next(p for p in inventory.positions if str(p.symbol) == "AAPL")
    assert aapl.market_value == Decimal("383")  # 2 × the last fill price 191.5
    # 100,000 − 3 × 190.25 + 1 × 191.5, exactly (JSON numbers read as Decimal).
    assert inventory.cash == Decimal("99620.75")
    assert inventory.as_of == authorized._now()
    assert "OPTION" in caplog.text  # left out, and said so
    asked = [p for m, p in fake.requests if "/accounts/" in p and "fields=" in p]
    assert asked == [f"/trader/v1/accounts/{fake.accounts[0][1]}?fields=positions"]


async def test_inventory_errors_are_classified(
    authorized: SchwabExecutor, fake: FakeSchwab
) -> None:
    fake.inject("account", Fault("status", 503), times=10)
    with pytest.raises(RetryableBrokerError):
        await authorized.inventory()
    fake.faults.clear()
    fake.inject("account", Fault("status", 200, {"securitiesAccount": {"positions": []}}))
    with pytest.raises(SchwabReplyError, match="currentBalances"):
        await authorized.inventory()
    assert (await authorized.inventory()).positions == ()


def account(positions: Any, balances: Any) -> bytes:
    return json.dumps(
        {"securitiesAccount": {"positions": positions, "currentBalances": balances}}
    ).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
ugly_position = st.fixed_dictionaries(
    {},
    optional={
        "longQuantity": json_values,
        "shortQuantity": json_values,
        "marketValue": json_values,
        "instrument": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "symbol": st.one_of(json_values, st.sampled_from(["AAPL", "BRK/B", "a b"])),
                    "assetType": st.one_of(json_values, st.sampled_from(["EQUITY", "OPTION"])),
                },
            ),
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    positions=st.one_of(json_values, st.lists(st.one_of(ugly_position, json_values), max_size=4)),
    balances=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {}, optional={"cashBalance": json_values, "cashAvailableForTrading": json_values}
        ),
    ),
)
# Found by hypothesis: an unhashable asset type raised TypeError from a set lookup.
@example(positions=[{"instrument": {"symbol": "AAPL", "assetType": []}}], balances={})
def test_ugly_account_replies_raise_only_broker_errors(positions: Any, balances: Any) -> None:
    try:
        holdings = parse_account_positions(account(positions, balances))
    except BrokerError:
        return
    assert all(isinstance(p.quantity, Decimal) for p in holdings.positions)
    assert isinstance(holdings.cash, Decimal) and holdings.cash.is_finite()

"""The Trading API executor against the fake over real HTTP: orders end to end."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from st0x_alpaca import AlpacaRejection, AlpacaTradingExecutor
from st0x_testing.fake_alpaca import (
    EXPIRES,
    FILL_AT_ONCE,
    PARTIAL_THEN_CANCELED,
    REJECTED,
    FakeAlpacaTrading,
)

from st0x_liquidity import (
    AuthenticationRequiredError,
    Direction,
    FinalBrokerError,
    MarketOrder,
    OrderState,
    Symbol,
)


def order(cid: str, qty: str = "1.5", symbol: str = "AAPL", side: Direction = Direction.BUY) -> MarketOrder:
    return MarketOrder(Symbol(symbol), side, Decimal(qty), cid, Decimal("100"))


async def test_rules_are_fractional_with_two_dollar_default(make_executor: Any) -> None:
    executor: AlpacaTradingExecutor = await make_executor(start=False)
    rules = executor.order_rules
    assert rules.fractional and rules.quantity_decimals == 9
    assert rules.min_notional == Decimal(2)
    assert rules.min_quantity == Decimal("0.000000001")
    custom = await make_executor(start=False, min_notional=Decimal("5.5"))
    assert custom.order_rules.min_notional == Decimal("5.5")


async def test_order_body_and_grid_rounding_down(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor()
    update = await executor.place_market_order(order("h-1", "1.9999999999999", side=Direction.SELL))
    placed = fake.order_by_client_id("h-1")
    assert placed is not None
    assert placed.qty == Decimal("1.999999999")  # cut, never rounded up to 2
    assert placed.side == "sell" and placed.time_in_force == "day"
    assert update.broker_order_id == placed.id
    assert update.client_order_id == "h-1"
    assert update.state is OrderState.SUBMITTED
    assert fake.order_posts == 1


async def test_lifecycle_partial_then_filled(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    fake.prices["TSLA"] = Decimal("251.37")
    executor = await make_executor()
    placed = await executor.place_market_order(order("h-2", "0.123456789", symbol="TSLA"))
    states = [placed.state]
    update = placed
    for _ in range(5):
        update = await executor.order_status(placed.broker_order_id)
        states.append(update.state)
        if update.state.terminal:
            break
    assert states == [
        OrderState.SUBMITTED,
        OrderState.SUBMITTED,
        OrderState.PARTIALLY_FILLED,
        OrderState.FILLED,
    ]
    assert update.filled_quantity == Decimal("0.123456789")
    assert update.average_price == Decimal("251.37")
    assert isinstance(update.filled_quantity, Decimal) and isinstance(update.average_price, Decimal)
    assert fake.positions["TSLA"] == Decimal("0.123456789")


async def test_partial_fill_reported_while_open(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor()
    placed = await executor.place_market_order(order("h-3", "3"))
    await executor.order_status(placed.broker_order_id)
    partial = await executor.order_status(placed.broker_order_id)
    assert partial.state is OrderState.PARTIALLY_FILLED
    assert partial.filled_quantity == Decimal("1.5")
    assert partial.average_price == Decimal("100")


@pytest.mark.parametrize(
    "case",
    [
        (PARTIAL_THEN_CANCELED, OrderState.CANCELLED, Decimal("0.4"), "canceled"),
        (EXPIRES, OrderState.CANCELLED, Decimal(0), "expired"),
        (REJECTED, OrderState.FAILED, Decimal(0), "rejected"),
        (FILL_AT_ONCE, OrderState.FILLED, Decimal(1), None),
    ],
)
async def test_terminal_outcomes(
    fake: FakeAlpacaTrading,
    make_executor: Any,
    case: tuple[Any, OrderState, Decimal, str | None],
) -> None:
    script, state, filled, reason_part = case
    fake.scripts["MSFT"] = script
    executor = await make_executor()
    placed = await executor.place_market_order(order("t-1", "1", symbol="MSFT"))
    update = placed
    for _ in range(5):
        update = await executor.order_status(placed.broker_order_id)
        if update.state.terminal:
            break
    assert update.state is state
    assert update.filled_quantity == filled
    if reason_part is None:
        assert update.reason is None
    else:
        assert update.reason is not None and reason_part in update.reason
    if filled > 0:
        assert update.average_price == Decimal("100")
        if state is OrderState.CANCELLED:
            assert "filled 0.4 of 1" in (update.reason or "")


async def test_find_order_by_client_order_id(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor()
    intent = order("find-me")
    assert await executor.find_order("find-me", intent) is None
    placed = await executor.place_market_order(intent)
    found = await executor.find_order("find-me", intent)
    assert found is not None and found.broker_order_id == placed.broker_order_id
    assert found.client_order_id == "find-me"


async def test_duplicate_client_order_id_returns_the_existing_order(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    executor = await make_executor()
    first = await executor.place_market_order(order("dup-1"))
    again = await executor.place_market_order(order("dup-1"))
    assert again.broker_order_id == first.broker_order_id
    assert len(fake.orders) == 1
    assert fake.order_posts == 2  # Alpaca saw the second POST and refused it (422)


async def test_validation_rejection_is_final_with_alpacas_message(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    fake.non_fractionable.add("BRK.A")
    executor = await make_executor()
    with pytest.raises(FinalBrokerError) as caught:
        await executor.place_market_order(order("nf-1", "0.5", symbol="BRK.A"))
    assert isinstance(caught.value, AlpacaRejection)
    assert caught.value.status == 422 and caught.value.code == 40010001
    assert "not fractionable" in str(caught.value)
    assert not fake.orders


async def test_insufficient_buying_power_403_is_a_rejection_not_auth(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    fake.cash = Decimal("10")
    executor = await make_executor()
    with pytest.raises(FinalBrokerError) as caught:
        await executor.place_market_order(order("bp-1", "5"))
    assert not isinstance(caught.value, AuthenticationRequiredError)
    assert "insufficient buying power" in str(caught.value)
    assert "40310000" in str(caught.value)


async def test_fractional_short_refused_when_shorting_is_not_allowed(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    fake.allow_short = False
    executor = await make_executor()
    with pytest.raises(FinalBrokerError, match="insufficient qty available"):
        await executor.place_market_order(order("short-1", "0.5", side=Direction.SELL))


async def test_quantity_below_grid_is_refused_locally(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor()
    with pytest.raises(FinalBrokerError, match="smallest fractional unit"):
        await executor.place_market_order(order("tiny", "0.0000000001"))
    assert fake.order_posts == 0


async def test_long_client_order_ids_are_shortened_deterministically(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    long_id = "a-very-long-prefix-" + "x" * 40 + "-AAPL-7"
    executor = await make_executor()
    placed = await executor.place_market_order(order(long_id))
    assert placed.client_order_id == long_id  # the engine sees its own id
    (sent,) = fake.by_client_order_id
    assert len(sent) == 48 and sent.startswith("a-very-long-prefix-")
    found = await executor.find_order(long_id, order(long_id))
    assert found is not None and found.broker_order_id == placed.broker_order_id
    assert found.client_order_id == long_id
    again = await executor.place_market_order(order(long_id))
    assert again.broker_order_id == placed.broker_order_id and len(fake.orders) == 1


async def test_orders_wait_for_the_open(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    fake.market_open = False
    executor = await make_executor()
    placed = await executor.place_market_order(order("closed-1"))
    for _ in range(4):
        update = await executor.order_status(placed.broker_order_id)
    assert update.state is OrderState.SUBMITTED and update.filled_quantity == 0
    fake.market_open = True
    update = await executor.order_status(placed.broker_order_id)
    assert update.state is OrderState.PARTIALLY_FILLED


async def test_unknown_order_id_is_final(make_executor: Any) -> None:
    executor = await make_executor()
    with pytest.raises(FinalBrokerError, match="order not found"):
        await executor.order_status("0f6c2a58-5c4a-4e2b-9a3b-9f2f0d4f1b11")
    with pytest.raises(FinalBrokerError, match="UUID"):
        await executor.order_status("../account")


async def test_clock_open_and_closed(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    executor = await make_executor()
    opened = await executor.market_clock()
    assert opened.is_open and opened.next_close is not None
    fake.market_open = False
    closed = await executor.market_clock()
    assert not closed.is_open and closed.next_open is not None
    assert closed.next_open.tzinfo is not None


async def test_inventory_positions_and_cash(fake: FakeAlpacaTrading, make_executor: Any) -> None:
    fake.positions = {"AAPL": Decimal("2.5"), "TSLA": Decimal("-1.25")}
    fake.prices["TSLA"] = Decimal("200.01")
    fake.cash = Decimal("1234.567")
    executor = await make_executor()
    inventory = await executor.inventory()
    assert inventory.cash == Decimal("1234.567")  # sub-cent cash is fine
    by_symbol = {str(p.symbol): p for p in inventory.positions}
    assert by_symbol["AAPL"].quantity == Decimal("2.5")
    assert by_symbol["TSLA"].quantity == Decimal("-1.25")
    assert by_symbol["TSLA"].market_value == Decimal("-250.0125")


async def test_start_refuses_blocked_or_inactive_accounts(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    fake.trading_blocked = True
    with pytest.raises(FinalBrokerError, match="blocked"):
        await make_executor()
    fake.trading_blocked = False
    fake.account_status = "ACCOUNT_CLOSED"
    with pytest.raises(FinalBrokerError, match="ACCOUNT_CLOSED"):
        await make_executor()


async def test_wire_body_matches_alpacas_documented_fields(
    fake: FakeAlpacaTrading, make_executor: Any
) -> None:
    executor = await make_executor()
    await executor.place_market_order(order("body-1", "2.50"))
    assert fake.order_bodies == [
        {
            "symbol": "AAPL",
            "qty": "2.5",
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "extended_hours": False,
            "client_order_id": "body-1",
        }
    ]

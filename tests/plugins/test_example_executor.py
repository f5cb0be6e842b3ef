"""The example plugin's executor honours the Executor contract that docs/plugins.md states."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from st0x_liquidity import (
    Direction,
    Executor,
    FinalBrokerError,
    MarketOrder,
    OrderState,
    Symbol,
    make_converter,
)

# Import the example's package from its source folder, then take the folder off
# sys.path again: the rest of the session must not discover the plugin.
_SRC = str(Path(__file__).resolve().parents[2] / "examples" / "plugin-example" / "src")
sys.path.insert(0, _SRC)
try:
    from st0x_example_broker import ExamplePaperConfig, ExamplePaperExecutor
finally:
    sys.path.remove(_SRC)


def order(cid: str, symbol: str = "AAPL", quantity: str = "1.5", side: Direction = Direction.SELL) -> MarketOrder:
    return MarketOrder(Symbol(symbol), side, Decimal(quantity), cid, Decimal("187.5"))


async def started(path: Path, **config: object) -> ExamplePaperExecutor:
    executor = ExamplePaperExecutor(make_converter().structure(config, ExamplePaperConfig), path)
    await executor.start()
    return executor


async def test_places_finds_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    executor = await started(path)
    assert isinstance(executor, Executor)
    assert executor.order_rules.fractional and executor.order_rules.quantity_decimals == 6
    assert await executor.find_order("c-1", order("c-1")) is None

    placed = await executor.place_market_order(order("c-1"))
    assert placed.state is OrderState.FILLED
    assert (placed.filled_quantity, placed.average_price) == (Decimal("1.5"), Decimal("187.5"))
    assert placed.client_order_id == "c-1"
    assert await executor.order_status(placed.broker_order_id) == placed
    # The same client_order_id again is the same order, not a second one.
    assert await executor.place_market_order(order("c-1")) == placed
    await executor.close()

    again = await started(path)
    assert await again.find_order("c-1", order("c-1")) == placed
    await again.place_market_order(order("c-2", "TSLA", "2", Direction.BUY))
    inventory = await again.inventory()
    assert {(p.symbol.ticker, p.quantity) for p in inventory.positions} == {
        ("AAPL", Decimal("-1.5")),
        ("TSLA", Decimal("2")),
    }
    assert inventory.cash == Decimal("1.5") * Decimal("187.5") - 2 * Decimal("187.5")
    assert (await again.market_clock()).is_open


async def test_refusals_are_final_broker_errors(tmp_path: Path) -> None:
    executor = await started(
        tmp_path / "orders.json", reject_symbols=["NVDA"], quantity_decimals=2, fill_price="100"
    )
    with pytest.raises(FinalBrokerError, match="NVDA is not tradable"):
        await executor.place_market_order(order("c-1", "NVDA"))
    with pytest.raises(FinalBrokerError, match="2-decimal grid"):
        await executor.place_market_order(order("c-2", quantity="0.125"))
    with pytest.raises(FinalBrokerError, match="no order"):
        await executor.order_status("nope")
    assert (await executor.place_market_order(order("c-3"))).average_price == Decimal(100)
    assert not (await executor.find_order("c-1", order("c-1")))


def test_config_rejects_unknown_keys_and_float_money() -> None:
    conv = make_converter()
    with pytest.raises((ClassValidationError, ForbiddenExtraKeysError)):
        conv.structure({"fil_price": "1"}, ExamplePaperConfig)
    with pytest.raises(ClassValidationError):
        conv.structure({"fill_price": 0.1}, ExamplePaperConfig)
    secret = conv.structure({"api_key": "sk-1"}, ExamplePaperConfig).api_key
    assert secret is not None and "sk-1" not in repr(secret) and secret.get() == "sk-1"

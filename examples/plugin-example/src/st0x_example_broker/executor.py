"""A paper broker: orders live in a JSON file and fill at once at the reference price.

Everything here comes from the core's public API (``st0x_liquidity``), never from
its internals. A real broker plugin has the same shape; it talks HTTP where this
one reads and writes a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from st0x_liquidity import (
    AppConfig,
    Direction,
    ExecutorContext,
    FinalBrokerError,
    HedgeOrder,
    Inventory,
    MarketClock,
    MarketOrder,
    OrderRules,
    OrderState,
    OrderUpdate,
    Position,
    Secret,
    Symbol,
    fmt,
    round_down,
)


@attrs.frozen
class ExamplePaperConfig:
    """The ``[broker]`` keys of ``type = "example-paper"``; every one is optional.

    Each can also come from the environment as ``ST0X_BROKER_<FIELD>``, e.g.
    ``ST0X_BROKER_FILL_PRICE=100``.
    """

    # Where the paper broker keeps its orders (default: next to the database).
    state_path: Path | None = None
    # Fill at this price instead of the order's reference price.
    fill_price: Decimal | None = None
    # Fractional share grid and smallest order value the engine may send.
    quantity_decimals: int = 6
    min_notional: Decimal = Decimal(1)
    # Orders for these base tickers are refused, to show FinalBrokerError.
    reject_symbols: list[str] = attrs.field(factory=list)
    # Not used by a paper broker; shows how a credential is declared.
    api_key: Secret | None = None


def state_path_for(config: ExamplePaperConfig, app: AppConfig) -> Path:
    """The order file: relative paths are relative to the config file's folder."""
    if config.state_path is None:
        return app.database_path.with_name(app.database_path.name + ".example-paper.json")
    path = config.state_path.expanduser()
    return path if path.is_absolute() else app.config_dir / path


def read_orders(path: Path) -> dict[str, dict[str, str]]:
    """The orders in ``path`` by broker order id (empty if the file does not exist)."""
    try:
        data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data


class ExamplePaperExecutor:
    """Fills every acceptable order at once, in full; remembers it durably."""

    name = "example-paper"

    def __init__(self, config: ExamplePaperConfig, state_path: Path) -> None:
        self.config = config
        self.state_path = state_path
        self._orders: dict[str, dict[str, str]] = {}  # broker order id -> order
        self._by_client_id: dict[str, str] = {}  # client order id -> broker order id
        self._lock = asyncio.Lock()
        self._rules = OrderRules.fractional_shares(config.quantity_decimals, config.min_notional)

    @property
    def order_rules(self) -> OrderRules:
        return self._rules

    async def start(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self._orders = await asyncio.to_thread(read_orders, self.state_path)
        self._by_client_id = {o["client_order_id"]: oid for oid, o in self._orders.items()}

    async def close(self) -> None:
        return None

    async def place_market_order(self, order: MarketOrder) -> OrderUpdate:
        if order.symbol.ticker in self.config.reject_symbols:
            raise FinalBrokerError(f"{order.symbol} is not tradable at this broker")
        decimals = self._rules.quantity_decimals
        if order.quantity <= 0 or round_down(order.quantity, decimals) != order.quantity:
            raise FinalBrokerError(f"quantity {order.quantity} is not on the {decimals}-decimal grid")
        async with self._lock:
            known = self._by_client_id.get(order.client_order_id)
            if known is not None:
                # Same client_order_id again: answer with the first order, never a second.
                return self._update(self._orders[known])
            now = datetime.now(UTC).isoformat()
            price = self.config.fill_price or order.reference_price
            broker_order_id = uuid.uuid4().hex
            self._orders[broker_order_id] = {
                "client_order_id": order.client_order_id,
                "symbol": order.symbol.ticker,
                "side": order.side.value,
                "quantity": fmt(order.quantity),
                "filled_quantity": fmt(order.quantity),
                "average_price": fmt(price),
                "state": OrderState.FILLED.value,
                "updated_at": now,
            }
            self._by_client_id[order.client_order_id] = broker_order_id
            # Durable before we answer, as at a real broker: after a crash the
            # engine's recovery finds this order through find_order.
            await asyncio.to_thread(_write_json, self.state_path, self._orders)
            return self._update(self._orders[broker_order_id])

    async def order_status(self, broker_order_id: str) -> OrderUpdate:
        order = self._orders.get(broker_order_id)
        if order is None:
            raise FinalBrokerError(f"no order {broker_order_id}")
        return self._update(order)

    async def find_order(self, client_order_id: str, order: HedgeOrder) -> OrderUpdate | None:
        broker_order_id = self._by_client_id.get(client_order_id)
        return None if broker_order_id is None else self._update(self._orders[broker_order_id])

    async def market_clock(self) -> MarketClock:
        return MarketClock(is_open=True)

    async def inventory(self) -> Inventory:
        shares: dict[str, Decimal] = {}
        cash = Decimal(0)
        for o in self._orders.values():
            sign = 1 if o["side"] == Direction.BUY.value else -1
            filled = Decimal(o["filled_quantity"]) * sign
            shares[o["symbol"]] = shares.get(o["symbol"], Decimal(0)) + filled
            cash -= filled * Decimal(o["average_price"])
        positions = tuple(Position(Symbol(s), q) for s, q in sorted(shares.items()))
        return Inventory(positions=positions, cash=cash, as_of=datetime.now(UTC))

    async def maintenance(self) -> None:
        return None  # no tokens to refresh

    def _update(self, order: dict[str, str]) -> OrderUpdate:
        broker_order_id = self._by_client_id[order["client_order_id"]]
        return OrderUpdate(
            broker_order_id,
            OrderState(order["state"]),
            filled_quantity=Decimal(order["filled_quantity"]),
            average_price=Decimal(order["average_price"]),
            client_order_id=order["client_order_id"],
            updated_at=datetime.fromisoformat(order["updated_at"]),
        )


def _write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def make_executor(config: ExamplePaperConfig, context: ExecutorContext) -> ExamplePaperExecutor:
    """The factory the core calls with the structured ``[broker]`` section."""
    return ExamplePaperExecutor(config, state_path_for(config, context.app))

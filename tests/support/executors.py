"""A scriptable executor for engine tests (the engine is under test, not a broker)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

from st0x_liquidity.domain.orders import (
    HedgeOrder,
    MarketClock,
    MarketOrder,
    OrderRules,
    OrderState,
    OrderUpdate,
)
from st0x_liquidity.errors import NotSupportedError
from st0x_liquidity.protocols import Inventory

Behaviour = Callable[[MarketOrder, int], OrderUpdate | Exception]


class ScriptedExecutor:
    """Fills everything at the reference price unless a behaviour says otherwise.

    ``behaviours`` maps a client order id prefix-free call number to an outcome;
    ``on_place`` may raise or return a custom update. Orders are remembered by
    client order id, as a broker would.
    """

    name = "scripted"

    def __init__(self, rules: OrderRules | None = None) -> None:
        self._rules = rules or OrderRules.whole_shares()
        self.orders: dict[str, MarketOrder] = {}
        self.updates: dict[str, OrderUpdate] = {}
        self.place_calls: Counter[str] = Counter()
        self.find_calls: Counter[str] = Counter()
        self.on_place: Behaviour | None = None
        self.on_status: Callable[[str, OrderUpdate], OrderUpdate | Exception] | None = None
        self.clock = MarketClock(True)
        self.placed = asyncio.Event()

    @property
    def order_rules(self) -> OrderRules:
        return self._rules

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def accept(
        self,
        order: MarketOrder,
        state: OrderState = OrderState.FILLED,
        filled: Decimal | None = None,
    ) -> OrderUpdate:
        broker_id = f"b-{order.client_order_id}"
        qty = order.quantity if filled is None else filled
        update = OrderUpdate(
            broker_id,
            state,
            qty if state is not OrderState.SUBMITTED else (filled or Decimal(0)),
            order.reference_price if qty else None,
            client_order_id=order.client_order_id,
        )
        self.orders[order.client_order_id] = order
        self.updates[broker_id] = update
        return update

    async def place_market_order(self, order: MarketOrder) -> OrderUpdate:
        self.place_calls[order.client_order_id] += 1
        self.placed.set()
        if self.on_place is not None:
            outcome = self.on_place(order, self.place_calls[order.client_order_id])
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return self.accept(order)

    async def order_status(self, broker_order_id: str) -> OrderUpdate:
        update = self.updates[broker_order_id]
        if self.on_status is not None:
            outcome = self.on_status(broker_order_id, update)
            if isinstance(outcome, Exception):
                raise outcome
            self.updates[broker_order_id] = outcome
            return outcome
        return update

    async def find_order(self, client_order_id: str, order: HedgeOrder) -> OrderUpdate | None:
        self.find_calls[client_order_id] += 1
        if client_order_id not in self.orders:
            return None
        return self.updates[f"b-{client_order_id}"]

    async def market_clock(self) -> MarketClock:
        return self.clock

    async def inventory(self) -> Inventory:
        raise NotSupportedError("scripted")

    async def maintenance(self) -> None:
        return None

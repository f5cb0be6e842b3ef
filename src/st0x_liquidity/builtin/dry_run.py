"""The ``dry-run`` executor: a pretend broker that keeps its orders durably.

It follows the order rules of a broker profile (whole shares like Schwab, or
fractional like Alpaca), fills at the triggering fill's price (or a fixed one),
and can simulate latency, rejections and partial fills. Its orders live in a
ledger file of their own (:mod:`st0x_liquidity.store.dry_run_ledger`), the way
a real broker keeps them on its side, so the engine's crash recovery finds them
by ``client_order_id`` exactly as it would at a real broker.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar

import attrs

from ..config import resolve_path
from ..domain.fills import Direction
from ..domain.numbers import ZERO, mul, round_down
from ..domain.orders import MarketClock, MarketOrder, OrderRules, OrderState, OrderUpdate
from ..domain.symbols import Symbol
from ..errors import AmbiguousBrokerError, FinalBrokerError, RetryableBrokerError, StoreError
from ..hookspecs import hookimpl
from ..protocols import Inventory, Position
from ..registry import ExecutorContext, ExecutorType
from ..store.dry_run_ledger import DryRunLedger, LedgerOrder
from ..validators import between
from .clocks import always_open, nyse_regular_hours

T = TypeVar("T")

log = logging.getLogger(__name__)


def _rate(_i: object, attr: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not ZERO <= value <= 1:
        raise ValueError(f"{attr.name} must be between 0 and 1")


@attrs.frozen
class DryRunConfig:
    profile: Literal["fractional", "whole"] = "fractional"
    quantity_decimals: int = attrs.field(default=9, validator=between(0, 18))
    min_notional: Decimal = attrs.field(default=Decimal(2), validator=between(0, 1_000_000))
    latency: float = attrs.field(default=0.0, validator=between(0, 3600))
    failure_rate: Decimal = attrs.field(default=Decimal(0), validator=_rate)
    partial_fill_rate: Decimal = attrs.field(default=Decimal(0), validator=_rate)
    clock: Literal["always", "nyse"] = "always"
    fill_price: Decimal | None = None
    state_path: Path | None = None
    seed: int = 0


class DryRunExecutor:
    """Accepts every well-formed order and settles it by the simulation rules."""

    name = "dry-run"

    def __init__(
        self,
        config: DryRunConfig,
        state_path: Path | str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.state_path = state_path
        self._now = now
        self.ledger = DryRunLedger(state_path)
        self.stats: dict[str, int] = {"request_errors": 0, "rate_limited": 0}
        """Broker HTTP counters for ``/metrics``: always zero, nothing goes over the wire."""
        if config.profile == "whole":
            self._rules = OrderRules.whole_shares()
        else:
            self._rules = OrderRules.fractional_shares(
                config.quantity_decimals, config.min_notional
            )

    @property
    def order_rules(self) -> OrderRules:
        return self._rules

    async def start(self) -> None:
        await self.ledger.open()

    async def close(self) -> None:
        await self.ledger.close()

    async def place_market_order(self, order: MarketOrder) -> OrderUpdate:
        self._check(order)
        now = self._now()
        rng = random.Random(f"{self.config.seed}:{order.client_order_id}")
        price = self.config.fill_price or order.reference_price
        if rng.random() < float(self.config.failure_rate):
            outcome, filled, reason = "failed", ZERO, "simulated rejection"
        elif rng.random() < float(self.config.partial_fill_rate):
            fraction = Decimal(rng.randint(1, 99)) / 100
            decimals = self._rules.quantity_decimals if self._rules.fractional else 0
            filled = round_down(mul(order.quantity, fraction), decimals)
            outcome, reason = "cancelled", "simulated partial fill, remainder cancelled"
        else:
            outcome, filled, reason = "filled", order.quantity, None
        broker_id = uuid.uuid4().hex
        done = now + timedelta(seconds=self.config.latency)
        placed = LedgerOrder(
            broker_id,
            order.client_order_id,
            str(order.symbol),
            order.side.value,
            order.quantity,
            price,
            outcome,
            filled,
            reason,
            now,
            done,
        )
        try:
            recorded = await self.ledger.record(placed)
        except StoreError as exc:  # its database did not answer: as a dropped connection
            raise AmbiguousBrokerError(str(exc)) from None
        if not recorded:
            raise FinalBrokerError(f"client_order_id {order.client_order_id} was already used")
        return await self.order_status(broker_id)

    def _check(self, order: MarketOrder) -> None:
        if order.quantity <= ZERO:
            raise FinalBrokerError(f"quantity must be positive, got {order.quantity}")
        if not self._rules.fractional and order.quantity != order.quantity.to_integral_value():
            raise FinalBrokerError(f"whole shares only, got {order.quantity}")
        if self._rules.fractional and order.quantity != round_down(
            order.quantity, self._rules.quantity_decimals
        ):
            raise FinalBrokerError(
                f"quantity {order.quantity} has more than {self._rules.quantity_decimals} decimals"
            )

    async def order_status(self, broker_order_id: str) -> OrderUpdate:
        found = await self._ask(self.ledger.by_broker_id(broker_order_id))
        if found is None:
            raise FinalBrokerError(f"order {broker_order_id} not found")
        return self._update(found)

    async def find_order(self, client_order_id: str, order: MarketOrder) -> OrderUpdate | None:
        found = await self._ask(self.ledger.by_client_id(client_order_id))
        return None if found is None else self._update(found)

    async def _ask(self, query: Awaitable[T]) -> T:
        """A read of the ledger; a database that does not answer is a retryable broker error."""
        try:
            return await query
        except StoreError as exc:
            raise RetryableBrokerError(str(exc)) from None

    def _update(self, placed: LedgerOrder) -> OrderUpdate:
        broker_id, cid = placed.broker_order_id, placed.client_order_id
        if self._now() < placed.done_at:
            return OrderUpdate(broker_id, OrderState.SUBMITTED, client_order_id=cid)
        state = {
            "filled": OrderState.FILLED,
            "failed": OrderState.FAILED,
            "cancelled": OrderState.CANCELLED,
        }[placed.outcome]
        filled_qty = placed.filled_quantity
        return OrderUpdate(
            broker_id,
            state,
            filled_quantity=filled_qty,
            average_price=placed.price if filled_qty > ZERO else None,
            reason=placed.reason,
            client_order_id=cid,
        )

    async def market_clock(self) -> MarketClock:
        now = self._now()
        return always_open(now) if self.config.clock == "always" else nyse_regular_hours(now)

    async def inventory(self) -> Inventory:
        positions: dict[str, Decimal] = {}
        cash = ZERO
        for placed in await self._ask(self.ledger.orders()):
            qty = placed.filled_quantity
            signed = qty if placed.side == Direction.BUY.value else -qty
            positions[placed.symbol] = positions.get(placed.symbol, ZERO) + signed
            cash -= mul(signed, placed.price)
        return Inventory(
            positions=tuple(Position(Symbol(s), q) for s, q in sorted(positions.items())),
            cash=cash,
            as_of=self._now(),
        )

    async def maintenance(self) -> None:
        return None

    async def placement_attempts(self) -> dict[str, int]:
        """How often each client_order_id reached this broker (tests check for doubles)."""
        return await self.ledger.placement_counts()


def _factory(config: DryRunConfig, context: ExecutorContext) -> DryRunExecutor:
    path: Path | str
    if config.state_path is not None:
        path = resolve_path(context.app, config.state_path)
    elif context.app.postgres is not None:
        path = context.app.database  # its tables in the bot's database: a standby sees them
    else:
        db = context.app.database_path
        path = db.with_name(db.name + ".dry-run.sqlite")
    return DryRunExecutor(config, path)


@hookimpl
def st0x_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            name="dry-run",
            config_class=DryRunConfig,
            factory=_factory,
            description="simulated broker; records orders in a local file",
        )
    )

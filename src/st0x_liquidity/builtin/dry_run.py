"""The ``dry-run`` executor: a pretend broker that keeps its orders durably.

It follows the order rules of a broker profile (whole shares like Schwab, or
fractional like Alpaca), fills at the triggering fill's price (or a fixed one),
and can simulate latency, rejections and partial fills. Its orders live in a
SQLite file of their own, the way a real broker keeps them on its side, so the
engine's crash recovery finds them by ``client_order_id`` exactly as it would at
a real broker.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import aiosqlite
import attrs

from ..config import resolve_path
from ..domain.fills import Direction
from ..domain.numbers import ZERO, fmt, mul, round_down
from ..domain.orders import MarketClock, MarketOrder, OrderRules, OrderState, OrderUpdate
from ..domain.symbols import Symbol
from ..errors import FinalBrokerError, StoreError
from ..hookspecs import hookimpl
from ..protocols import Inventory, Position
from ..registry import ExecutorContext, ExecutorType
from ..validators import between
from .clocks import always_open, nyse_regular_hours

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    broker_order_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    outcome TEXT NOT NULL,
    filled_quantity TEXT NOT NULL,
    reason TEXT,
    placed_at TEXT NOT NULL,
    done_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS placements (
    client_order_id TEXT NOT NULL,
    attempted_at TEXT NOT NULL,
    result TEXT NOT NULL
);
"""


class DryRunExecutor:
    """Accepts every well-formed order and settles it by the simulation rules."""

    name = "dry-run"

    def __init__(
        self,
        config: DryRunConfig,
        state_path: Path,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.state_path = state_path
        self._now = now
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
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
        try:
            self._db = await aiosqlite.connect(self.state_path, isolation_level=None)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=FULL")
            await self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"dry-run order file {self.state_path}: {exc}") from None

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("dry-run executor is not started")
        return self._db

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
        # The order and the request log commit together, as one broker-side fact.
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.execute(
                    "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        broker_id,
                        order.client_order_id,
                        str(order.symbol),
                        order.side.value,
                        fmt(order.quantity),
                        fmt(price),
                        outcome,
                        fmt(filled),
                        reason,
                        now.isoformat(),
                        done.isoformat(),
                    ),
                )
                result = "accepted"
            except sqlite3.IntegrityError:
                result = "rejected: duplicate client_order_id"
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute(
                "INSERT INTO placements VALUES (?, ?, ?)",
                (order.client_order_id, now.isoformat(), result),
            )
            await self.db.execute("COMMIT")
        if result != "accepted":
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
        async with self.db.execute(
            "SELECT broker_order_id, client_order_id, quantity, price, outcome, filled_quantity, "
            "reason, done_at FROM orders WHERE broker_order_id = ?",
            (broker_order_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise FinalBrokerError(f"order {broker_order_id} not found")
        return self._update(tuple(row))

    async def find_order(self, client_order_id: str, order: MarketOrder) -> OrderUpdate | None:
        async with self.db.execute(
            "SELECT broker_order_id, client_order_id, quantity, price, outcome, filled_quantity, "
            "reason, done_at FROM orders WHERE client_order_id = ?",
            (client_order_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else self._update(tuple(row))

    def _update(self, row: tuple[object, ...]) -> OrderUpdate:
        broker_id, cid, _qty, price, outcome, filled, reason, done_at = row
        if self._now() < datetime.fromisoformat(str(done_at)):
            return OrderUpdate(str(broker_id), OrderState.SUBMITTED, client_order_id=str(cid))
        state = {
            "filled": OrderState.FILLED,
            "failed": OrderState.FAILED,
            "cancelled": OrderState.CANCELLED,
        }[str(outcome)]
        filled_qty = Decimal(str(filled))
        return OrderUpdate(
            str(broker_id),
            state,
            filled_quantity=filled_qty,
            average_price=Decimal(str(price)) if filled_qty > ZERO else None,
            reason=None if reason is None else str(reason),
            client_order_id=str(cid),
        )

    async def market_clock(self) -> MarketClock:
        now = self._now()
        return always_open(now) if self.config.clock == "always" else nyse_regular_hours(now)

    async def inventory(self) -> Inventory:
        positions: dict[str, Decimal] = {}
        cash = ZERO
        async with self.db.execute(
            "SELECT symbol, side, price, filled_quantity FROM orders"
        ) as cur:
            async for symbol, side, price, filled in cur:
                qty = Decimal(filled)
                signed = qty if side == Direction.BUY.value else -qty
                positions[symbol] = positions.get(symbol, ZERO) + signed
                cash -= mul(signed, Decimal(price))
        return Inventory(
            positions=tuple(Position(Symbol(s), q) for s, q in sorted(positions.items())),
            cash=cash,
            as_of=self._now(),
        )

    async def maintenance(self) -> None:
        return None

    async def placement_attempts(self) -> dict[str, int]:
        """How often each client_order_id reached this broker (tests check for doubles)."""
        async with self.db.execute(
            "SELECT client_order_id, COUNT(*) FROM placements GROUP BY client_order_id"
        ) as cur:
            return {str(c): int(n) async for c, n in cur}


def _factory(config: DryRunConfig, context: ExecutorContext) -> DryRunExecutor:
    if config.state_path is not None:
        path = resolve_path(context.app, config.state_path)
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

"""Hedge orders, their life cycle, and what an executor promises about them."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

import attrs

from .fills import Direction
from .numbers import ZERO
from .sessions import Session
from .symbols import Symbol


class OrderState(enum.Enum):
    """Life cycle of a hedge order.

    PENDING: the intent is durable, the broker has not (knowingly) accepted it.
    SUBMITTED / PARTIALLY_FILLED: live at the broker.
    FILLED / FAILED / CANCELLED: terminal. A FAILED or CANCELLED order may still
    carry a filled quantity (partially filled, then cancelled).
    """

    PENDING = "pending"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({OrderState.FILLED, OrderState.FAILED, OrderState.CANCELLED})


@attrs.frozen
class MarketOrder:
    """A market order the engine asks an executor to place.

    ``client_order_id`` is deterministic and durable before the call, so a retry
    after a crash can ask the broker whether this exact order already exists.
    ``reference_price`` is the last onchain price, for notional checks and for
    executors (dry-run) that need a price to fill at.
    """

    symbol: Symbol
    side: Direction
    quantity: Decimal
    client_order_id: str
    reference_price: Decimal


REFERENCE_SOURCES = ("pyth", "onchain", "broker_mark")
"""Where a limit's reference price came from, best first (docs/extended-hours.md)."""


@attrs.frozen
class LimitOrder:
    """A limit order for a hedge outside regular hours (``time_in_force`` day).

    ``limit_price`` is ``reference_price`` moved by the configured offset towards
    crossing and already on the broker's price grid
    (:func:`~st0x_liquidity.domain.sessions.round_limit`). ``session`` is the
    session it is placed in; executors send it as an extended-hours order
    (Alpaca ``extended_hours=true``; Schwab session AM/PM/SEAMLESS).
    ``reference_source`` is one of :data:`REFERENCE_SOURCES`.
    """

    symbol: Symbol
    side: Direction
    quantity: Decimal
    client_order_id: str
    limit_price: Decimal
    session: Session
    reference_price: Decimal
    reference_source: str


HedgeOrder: TypeAlias = MarketOrder | LimitOrder
"""Any order the engine places for a hedge."""


@attrs.frozen
class OrderUpdate:
    """What the broker says about an order right now.

    ``filled_quantity`` is cumulative; ``average_price`` is the average over
    everything filled so far (None while nothing has filled).
    """

    broker_order_id: str
    state: OrderState
    filled_quantity: Decimal = ZERO
    average_price: Decimal | None = None
    reason: str | None = None
    client_order_id: str | None = None
    updated_at: datetime | None = None


@attrs.frozen
class OrderRules:
    """How an executor wants hedges sized.

    Whole-share executors (Schwab) hedge ``floor(|net|)`` once ``|net| >= 1``.
    Fractional executors hedge ``|net|`` rounded down to ``quantity_decimals``
    places once its value at the last onchain price reaches ``min_notional``.
    """

    fractional: bool
    quantity_decimals: int = 0
    min_notional: Decimal = ZERO
    min_quantity: Decimal = Decimal(1)

    @classmethod
    def whole_shares(cls) -> OrderRules:
        return cls(
            fractional=False, quantity_decimals=0, min_notional=ZERO, min_quantity=Decimal(1)
        )

    @classmethod
    def fractional_shares(cls, decimals: int = 9, min_notional: Decimal = Decimal(2)) -> OrderRules:
        return cls(
            fractional=True,
            quantity_decimals=decimals,
            min_notional=min_notional,
            min_quantity=Decimal(1).scaleb(-decimals),
        )


@attrs.frozen
class MarketClock:
    """Whether the venue accepts market orders now, and when that changes."""

    is_open: bool
    next_open: datetime | None = None
    next_close: datetime | None = None

"""Domain events: the append-only facts the store keeps as its source of truth.

Events of one symbol live in the ``Position`` stream of that symbol, in the
order the engine decided them, so folding a stream reproduces the book. Each
event carries the allocations that were decided when it happened; views are a
plain projection of those, and rebuilding them cannot disagree with history.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeAlias

import attrs

from .accumulator import Allocation, Netting
from .fills import Direction, Fill, TradeId
from .orders import OrderState
from .risk import TradingState
from .symbols import Symbol

POSITION = "Position"
FILL_SOURCE = "FillSource"
CIRCUIT_BREAKER = "CircuitBreaker"
TRADING_STATE = "TradingState"
RECONCILIATION = "Reconciliation"


@attrs.frozen
class FillRecorded:
    TYPE: ClassVar[str] = "FillRecorded"
    fill: Fill
    nettings: tuple[Netting, ...] = ()


@attrs.frozen
class FillReverted:
    """A recorded fill left the canonical chain (reorg).

    The fill's own record stays (the audit trail is append-only); ``entry`` is a
    compensating entry of the opposite direction and same amount, under a
    synthetic trade id (see :func:`correction_id`), that goes through the book like
    any fill: it nets against open lots or opens exposure the next hedge corrects.
    A hedge already placed for the original stays.
    """

    TYPE: ClassVar[str] = "FillReverted"
    original: TradeId
    entry: Fill
    reason: str
    nettings: tuple[Netting, ...] = ()


@attrs.frozen
class FillReinstated:
    """A reverted fill came back onto the canonical chain: re-applied as a new entry."""

    TYPE: ClassVar[str] = "FillReinstated"
    original: TradeId
    entry: Fill
    nettings: tuple[Netting, ...] = ()


CORRECTION_STRIDE = 1_000_000_000
"""Synthetic log indexes of correction entries: original + k × stride (k = 1, 2, …)."""


def correction_id(original: TradeId, k: int) -> TradeId:
    return TradeId(original.tx_hash, original.log_index + k * CORRECTION_STRIDE)


@attrs.frozen
class HedgeIntended:
    """Durable before the broker is called (the exactly-once guarantee hangs on it).

    A market order (the default) has only the first fields. A limit order for
    an extended-hours hedge also records its ``limit_price``, the ``session`` it
    was placed for, where its ``reference_price`` came from
    (``reference_source``: pyth, onchain or broker_mark) and the onchain fill
    price it is bounded against (``onchain_price``). Older logs have none of
    them: they read back as market orders.
    """

    TYPE: ClassVar[str] = "HedgeIntended"
    client_order_id: str
    side: Direction
    quantity: Decimal
    reference_price: Decimal
    reserved: tuple[Allocation, ...]
    order_type: str = "market"
    limit_price: Decimal | None = None
    session: str | None = None
    reference_source: str | None = None
    onchain_price: Decimal | None = None

    @property
    def is_limit(self) -> bool:
        return self.order_type == "limit"


LIMIT_FIELDS = ("order_type", "limit_price", "session", "reference_source", "onchain_price")
"""HedgeIntended's fields for limit orders: left out of a market order's payload."""


@attrs.frozen
class HedgeSubmitted:
    TYPE: ClassVar[str] = "HedgeSubmitted"
    client_order_id: str
    broker_order_id: str


@attrs.frozen
class HedgeCancelRequested:
    """The engine is about to ask the broker to cancel a live order (durable first).

    ``reason``: ``reprice`` (older than the reprice timeout), ``regular_open``
    (the regular session started: the rest goes out as a market order) or
    ``recovery``. Until a ``HedgeClosed`` follows, a restarted engine asks the
    broker again and books whatever the order ended with.
    """

    TYPE: ClassVar[str] = "HedgeCancelRequested"
    client_order_id: str
    broker_order_id: str
    reason: str


@attrs.frozen
class HedgeProgressed:
    """A partial fill of a live order (cumulative quantity, average price)."""

    TYPE: ClassVar[str] = "HedgeProgressed"
    client_order_id: str
    side: Direction
    filled_quantity: Decimal
    average_price: Decimal | None
    hedged: tuple[Allocation, ...]


@attrs.frozen
class HedgeClosed:
    """Terminal: filled, failed or cancelled, with what filled before the end."""

    TYPE: ClassVar[str] = "HedgeClosed"
    client_order_id: str
    side: Direction
    state: OrderState
    filled_quantity: Decimal
    average_price: Decimal | None
    reason: str | None
    hedged: tuple[Allocation, ...]
    released: tuple[Allocation, ...]
    nettings: tuple[Netting, ...]


@attrs.frozen
class InputSkipped:
    """A source item that is not a usable fill, kept with its reason (never fatal)."""

    TYPE: ClassVar[str] = "InputSkipped"
    reason: str
    raw: str


@attrs.frozen
class CursorCheckpointed:
    """The source moved past input that produced no fill."""

    TYPE: ClassVar[str] = "CursorCheckpointed"


@attrs.frozen
class CircuitBreakerChanged:
    """Hedging was paused or resumed by an operator (stream ``CircuitBreaker/hedging``).

    Not folded into any view: it is the audit trail of the breaker. Fills keep
    being recorded while hedging is paused.
    """

    TYPE: ClassVar[str] = "CircuitBreakerChanged"
    paused: bool
    reason: str
    actor: str
    remote: str | None = None


@attrs.frozen
class TradingStateChanged:
    """A symbol's trading state (or every symbol's: ``symbol`` ``*``) took effect.

    Stream ``TradingState/<symbol>``. ``request`` is the ``trading_state_log`` row
    it applies (the ``risk`` command, the dashboard, or reconciliation wrote it).
    """

    TYPE: ClassVar[str] = "TradingStateChanged"
    symbol: str
    state: TradingState
    reason: str
    actor: str
    request: int
    remote: str | None = None


@attrs.frozen
class SymbolReconciliation:
    """One symbol compared: broker position vs the books' (starting holding + filled hedges)."""

    symbol: str
    broker: Decimal
    books: Decimal
    difference: Decimal
    mismatch: bool


@attrs.frozen
class ReconciliationChecked:
    """The broker's positions were compared with the books (stream ``Reconciliation/broker``).

    ``status``: ``ok``, ``mismatch``, ``unsupported`` (the executor cannot list
    positions) or ``error`` (the broker did not answer: ``detail``). Symbols with
    a hedge in flight are not compared (``skipped``).
    """

    TYPE: ClassVar[str] = "ReconciliationChecked"
    status: str
    symbols: tuple[SymbolReconciliation, ...] = ()
    skipped: tuple[str, ...] = ()
    tolerance: Decimal = Decimal(0)
    detail: str | None = None


DomainEvent: TypeAlias = (
    FillRecorded
    | FillReverted
    | FillReinstated
    | HedgeIntended
    | HedgeSubmitted
    | HedgeCancelRequested
    | HedgeProgressed
    | HedgeClosed
    | InputSkipped
    | CursorCheckpointed
    | CircuitBreakerChanged
    | TradingStateChanged
    | ReconciliationChecked
)

EVENT_TYPES: dict[str, type[Any]] = {
    cls.TYPE: cls
    for cls in (
        FillRecorded,
        FillReverted,
        FillReinstated,
        HedgeIntended,
        HedgeSubmitted,
        HedgeCancelRequested,
        HedgeProgressed,
        HedgeClosed,
        InputSkipped,
        CursorCheckpointed,
        CircuitBreakerChanged,
        TradingStateChanged,
        ReconciliationChecked,
    )
}
EVENT_VERSION = 1


@attrs.frozen
class NewEvent:
    """An event on its way into the store; the store assigns the sequence."""

    aggregate_type: str
    aggregate_id: str
    event: DomainEvent
    metadata: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class StoredEvent:
    aggregate_type: str
    aggregate_id: str
    sequence: int
    event: DomainEvent
    metadata: dict[str, Any]
    recorded_at: datetime


def position_event(symbol: Symbol, event: DomainEvent, **metadata: Any) -> NewEvent:
    return NewEvent(POSITION, str(symbol), event, dict(metadata))

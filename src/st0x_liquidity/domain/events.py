"""Domain events: the append-only facts the store keeps as its source of truth.

Events of one symbol live in the ``Position`` stream of that symbol, in the
order the engine decided them, so folding a stream reproduces the book. Each
event carries the allocations that were decided when it happened; views are a
plain projection of those, and rebuilding them cannot disagree with history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from json import dumps as _json_dumps
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, ClassVar, TypeAlias

import attrs
import cattrs

from .accumulator import Allocation, Netting
from .fast_init import positional
from .fills import Direction, Fill, TradeId
from .orders import OrderState
from .symbols import Symbol

POSITION = "Position"
FILL_SOURCE = "FillSource"
CIRCUIT_BREAKER = "CircuitBreaker"


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
    """Durable before the broker is called (the exactly-once guarantee hangs on it)."""

    TYPE: ClassVar[str] = "HedgeIntended"
    client_order_id: str
    side: Direction
    quantity: Decimal
    reference_price: Decimal
    reserved: tuple[Allocation, ...]


@attrs.frozen
class HedgeSubmitted:
    TYPE: ClassVar[str] = "HedgeSubmitted"
    client_order_id: str
    broker_order_id: str


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


DomainEvent: TypeAlias = (
    FillRecorded
    | FillReverted
    | FillReinstated
    | HedgeIntended
    | HedgeSubmitted
    | HedgeProgressed
    | HedgeClosed
    | InputSkipped
    | CursorCheckpointed
    | CircuitBreakerChanged
)

EVENT_TYPES: dict[str, type[Any]] = {
    cls.TYPE: cls
    for cls in (
        FillRecorded,
        FillReverted,
        FillReinstated,
        HedgeIntended,
        HedgeSubmitted,
        HedgeProgressed,
        HedgeClosed,
        InputSkipped,
        CursorCheckpointed,
        CircuitBreakerChanged,
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


# For the per-fill path: the same objects, built without attrs' __init__ (see fast_init).
new_fill_recorded = positional(FillRecorded)
new_event = positional(NewEvent)
new_stored_event = positional(StoredEvent)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(Decimal, lambda v, _: Decimal(str(v)))
    conv.register_unstructure_hook(TradeId, str)
    conv.register_structure_hook(TradeId, lambda v, _: TradeId.parse(v))
    conv.register_unstructure_hook(Symbol, str)
    conv.register_structure_hook(Symbol, lambda v, _: Symbol(v))
    conv.register_unstructure_hook(datetime, lambda d: d.isoformat())
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    return conv


CONVERTER = _make_converter()


def event_to_payload(event: DomainEvent) -> dict[str, Any]:
    payload: dict[str, Any] = CONVERTER.unstructure(event)
    return payload


def event_to_json(event: DomainEvent) -> str:
    """The stored JSON text of ``event``'s payload.

    Byte for byte what ``json.dumps(event_to_payload(event), separators=(",", ":"))``
    gives (a property test holds them equal), written by hand for the event types
    the engine records once per fill or hedge: cattrs plus the generic encoder
    cost ~45 µs per fill, a third of the ingestion budget. Other types take the
    generic path.
    """
    encode = _ENCODERS.get(type(event))
    if encode is None:
        return _json_dumps(event_to_payload(event), separators=(",", ":"))
    return encode(event)


def _tid(t: TradeId) -> str:
    # tx_hash is validated as 0x + 64 lower-case hex digits: nothing to escape.
    return f'"{t.text}"'


def _dec(v: Decimal) -> str:
    # !s: str(Decimal) is digits, sign, '.', 'E', or NaN/Infinity, and is what the
    # generic path writes; a bare {v} goes through Decimal.__format__, 3x slower.
    return f'"{v!s}"'


def _opt_dec(v: Decimal | None) -> str:
    return "null" if v is None else f'"{v!s}"'


def _opt_str(v: str | None) -> str:
    return "null" if v is None else _quote(v)


class _Stamp:
    """The last timestamp encoded: the fills of one block share one datetime.

    One tuple, replaced whole, so a thread never pairs one datetime's text
    with another datetime.
    """

    last: tuple[datetime | None, str] = (None, "")


def _stamp(when: datetime) -> str:
    value, text = _Stamp.last
    if when is not value:
        text = _quote(when.isoformat())
        _Stamp.last = (when, text)
    return text


def _fill(f: Fill) -> str:
    if type(f.block_number) is not int:
        return _json_dumps(CONVERTER.unstructure(f), separators=(",", ":"))
    return _fill_body(f, _stamp(f.block_timestamp))


def _fill_body(f: Fill, stamp: str) -> str:
    # A ticker is A-Z, 0-9 and '.' (validated): nothing to escape, as for _tid.
    return (
        f'{{"trade_id":"{f.trade_id.text}","symbol":"{f.symbol.ticker}",'
        f'"direction":"{f.direction._value_}","amount":"{f.amount!s}","price":"{f.price!s}",'
        f'"block_number":{f.block_number},"block_timestamp":{stamp}}}'
    )


def _netting(n: Netting) -> str:
    return f'{{"older":"{n.older.text}","newer":"{n.newer.text}","quantity":"{n.quantity!s}"}}'


def _nettings(ns: tuple[Netting, ...]) -> str:
    if not ns:
        return "[]"
    if len(ns) == 1:  # the common case: no list
        return f"[{_netting(ns[0])}]"
    return "[" + ",".join([_netting(n) for n in ns]) + "]"


def _allocations(allocs: tuple[Allocation, ...]) -> str:
    return (
        "["
        + ",".join(f'{{"trade_id":{_tid(a.trade_id)},"quantity":"{a.quantity!s}"}}' for a in allocs)
        + "]"
    )


def _fill_recorded(e: FillRecorded) -> str:
    # Once a fill: the timestamp cache and the usual nettings (none or one) are
    # handled here, without _fill's and _nettings' calls.
    f, ns = e.fill, e.nettings
    if type(f.block_number) is not int or len(ns) > 1:
        return f'{{"fill":{_fill(f)},"nettings":{_nettings(ns)}}}'
    when, stamp = _Stamp.last
    if f.block_timestamp is not when:
        stamp = _stamp(f.block_timestamp)
    netted = f"[{_netting(ns[0])}]" if ns else "[]"
    return f'{{"fill":{_fill_body(f, stamp)},"nettings":{netted}}}'


def _fill_reverted(e: FillReverted) -> str:
    return (
        f'{{"original":{_tid(e.original)},"entry":{_fill(e.entry)},"reason":{_quote(e.reason)},'
        f'"nettings":{_nettings(e.nettings)}}}'
    )


def _fill_reinstated(e: FillReinstated) -> str:
    return (
        f'{{"original":{_tid(e.original)},"entry":{_fill(e.entry)},'
        f'"nettings":{_nettings(e.nettings)}}}'
    )


def _hedge_intended(e: HedgeIntended) -> str:
    return (
        f'{{"client_order_id":{_quote(e.client_order_id)},"side":"{e.side.value}",'
        f'"quantity":{_dec(e.quantity)},"reference_price":{_dec(e.reference_price)},'
        f'"reserved":{_allocations(e.reserved)}}}'
    )


def _hedge_submitted(e: HedgeSubmitted) -> str:
    return (
        f'{{"client_order_id":{_quote(e.client_order_id)},'
        f'"broker_order_id":{_quote(e.broker_order_id)}}}'
    )


def _hedge_progressed(e: HedgeProgressed) -> str:
    return (
        f'{{"client_order_id":{_quote(e.client_order_id)},"side":"{e.side.value}",'
        f'"filled_quantity":{_dec(e.filled_quantity)},'
        f'"average_price":{_opt_dec(e.average_price)},"hedged":{_allocations(e.hedged)}}}'
    )


def _hedge_closed(e: HedgeClosed) -> str:
    return (
        f'{{"client_order_id":{_quote(e.client_order_id)},"side":"{e.side.value}",'
        f'"state":{_quote(e.state.value)},"filled_quantity":{_dec(e.filled_quantity)},'
        f'"average_price":{_opt_dec(e.average_price)},"reason":{_opt_str(e.reason)},'
        f'"hedged":{_allocations(e.hedged)},"released":{_allocations(e.released)},'
        f'"nettings":{_nettings(e.nettings)}}}'
    )


def _cursor_checkpointed(_e: CursorCheckpointed) -> str:
    return "{}"


_ENCODERS: dict[type[Any], Callable[[Any], str]] = {
    FillRecorded: _fill_recorded,
    FillReverted: _fill_reverted,
    FillReinstated: _fill_reinstated,
    HedgeIntended: _hedge_intended,
    HedgeSubmitted: _hedge_submitted,
    HedgeProgressed: _hedge_progressed,
    HedgeClosed: _hedge_closed,
    CursorCheckpointed: _cursor_checkpointed,
}


def event_from_payload(event_type: str, payload: dict[str, Any]) -> DomainEvent:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown event type {event_type!r}")
    event: DomainEvent = CONVERTER.structure(payload, cls)
    return event


def position_event(symbol: Symbol, event: DomainEvent, **metadata: Any) -> NewEvent:
    return NewEvent(POSITION, str(symbol), event, dict(metadata))

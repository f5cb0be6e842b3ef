"""Apply stored events to the view tables, one event at a time, inside the caller's transaction.

The same code serves every commit and ``rebuild-views``, so a rebuild cannot
disagree with what was written. Quantities change by deltas added in SQL with
the exact ``dec_add`` (decimal text in, canonical decimal text out): an
event only says what it changed, never what a row now holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from ..domain.accumulator import Allocation, Netting
from ..domain.events import (
    CORRECTION_STRIDE,
    EVENT_VERSION,
    FillRecorded,
    FillReinstated,
    FillReverted,
    HedgeCancelRequested,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    HedgeSubmitted,
    InputSkipped,
    NewEvent,
    StoredEvent,
)
from ..domain.fills import Direction, Fill, TradeId
from ..domain.numbers import EXACT, ZERO, add, fmt, sub
from ..domain.orders import OrderState


class Executor(Protocol):
    """What :func:`apply_event` needs of a backend's connection, inside its transaction.

    Statements are written once, with ``?`` placeholders; a backend whose
    driver spells them otherwise (psycopg: ``%s``) translates them.
    """

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def trade_ref(self, trade: int) -> object:
        """How ``fill_allocations.counterpart`` names the fill ``onchain_trades.id = trade``
        (SQLite: the integer, in a column without affinity; PostgreSQL: its text)."""
        ...


def dec_add(a: str | None, b: str | None) -> str:
    """Exact sum of two decimal texts, in the store's one spelling (SQL ``dec_add``)."""
    return fmt(EXACT.add(Decimal(a or "0"), Decimal(b or "0")))


_TRADE = "(SELECT id FROM onchain_trades WHERE tx_hash = ? AND log_index = ?)"

INSERT_TRADE = (
    "INSERT INTO onchain_trades (tx_hash, log_index, symbol, direction, amount, price, "
    "block_number, block_timestamp, arrival, open_quantity, source, recorded_at, corrects, "
    "correction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
OPEN_DELTA = (
    "UPDATE onchain_trades SET open_quantity = dec_add(open_quantity, ?) "
    "WHERE tx_hash = ? AND log_index = ?"
)
# A fill that is not there leaves a NULL trade and fails the transaction on NOT NULL.
ADD_LINK = (
    f"INSERT INTO fill_allocations (trade, kind, counterpart, quantity) VALUES ({_TRADE}, ?, ?, ?) "
    "ON CONFLICT (trade, kind, counterpart) DO UPDATE SET quantity = dec_add(fill_allocations.quantity, excluded.quantity)"
)
DROP_ZERO_LINK = (
    f"DELETE FROM fill_allocations WHERE trade = {_TRADE} AND kind = ? AND counterpart = ? "
    "AND quantity = '0'"
)
INSERT_HEDGE = (
    "INSERT INTO hedge_orders (client_order_id, symbol, side, quantity, reference_price, state, "
    "broker_order_id, filled_quantity, average_price, reason, created_at, updated_at, "
    "order_type, limit_price, session, reference_source, onchain_price) "
    "VALUES (?, ?, ?, ?, ?, 'pending', NULL, '0', NULL, NULL, ?, ?, ?, ?, ?, ?, ?)"
)
SUBMITTED_AT = (
    "UPDATE hedge_orders SET submitted_at = COALESCE(submitted_at, ?) WHERE client_order_id = ?"
)
CANCEL_REQUESTED = (
    "UPDATE hedge_orders SET cancel_requested_at = COALESCE(cancel_requested_at, ?), "
    "cancel_reason = COALESCE(cancel_reason, ?), updated_at = ? WHERE client_order_id = ?"
)
UPDATE_HEDGE = (
    "UPDATE hedge_orders SET state = ?, broker_order_id = COALESCE(?, broker_order_id), "
    "filled_quantity = COALESCE(?, filled_quantity), "
    "average_price = COALESCE(?, average_price), reason = COALESCE(?, reason), updated_at = ? "
    "WHERE client_order_id = ?"
)
CHANGE_POSITION = (
    "INSERT INTO positions (symbol, net, open_quantity, last_price, hedges_placed, "
    "pending_hedge, fills, updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?) "
    "ON CONFLICT (symbol) DO UPDATE SET net = dec_add(positions.net, excluded.net), "
    "open_quantity = dec_add(positions.open_quantity, excluded.open_quantity), "
    "last_price = COALESCE(excluded.last_price, positions.last_price), "
    "hedges_placed = positions.hedges_placed + excluded.hedges_placed, "
    "fills = positions.fills + excluded.fills, updated_at = excluded.updated_at"
)
SET_PENDING = "UPDATE positions SET pending_hedge = ? WHERE symbol = ?"
UPSERT_CURSOR = (
    "INSERT INTO source_cursors (source, cursor, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at"
)
INSERT_SKIPPED = "INSERT INTO skipped_inputs VALUES (?, ?, ?, ?, ?, ?)"


INSERT_EVENT = (
    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, "
    "payload, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
LAST_SEQUENCE = (
    "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE aggregate_type = ? AND aggregate_id = ?"
)
Key = tuple[str, str]
Encoded = list[tuple[NewEvent, str, str]]
"""A caller's events with their payload and metadata JSON."""


def append_entries(
    db: Executor, entries: Sequence[Encoded], known: dict[Key, int], now: datetime
) -> tuple[list[list[StoredEvent]], dict[Key, int]]:
    """Inside the caller's fenced transaction: the entries' events with their sequences,
    and their view rows, all recorded at ``now``.

    ``known`` holds streams' last sequences from earlier commits; the ones this
    commit assigned come back for the caller to keep once it has committed.
    """
    sequences: dict[Key, int] = {}
    results = []
    when = now.isoformat()
    for entry in entries:
        stored_entry = []
        for new, payload, metadata in entry:
            key = (new.aggregate_type, new.aggregate_id)
            if key not in sequences:
                row = None if known.get(key) else db.fetchone(LAST_SEQUENCE, key)
                sequences[key] = known[key] if row is None else int(row[0])
            sequences[key] += 1
            stored = StoredEvent(*key, sequences[key], new.event, new.metadata, now)
            db.execute(
                INSERT_EVENT,
                (*key, sequences[key], new.event.TYPE, EVENT_VERSION, payload, metadata, when),
            )
            apply_event(db, stored)
            stored_entry.append(stored)
        results.append(stored_entry)
    return results, sequences


def apply_event(db: Executor, stored: StoredEvent) -> None:
    """Write what ``stored`` changes in the views."""
    event, when, meta = stored.event, stored.recorded_at.isoformat(), stored.metadata
    source = meta.get("source")
    if source is not None and "cursor" in meta:
        db.execute(UPSERT_CURSOR, (source, json.dumps(meta["cursor"], sort_keys=True), when))
    symbol = stored.aggregate_id
    if isinstance(event, FillRecorded):
        _fill(db, stored, event.fill, event.nettings, when=when, source=source)
    elif isinstance(event, FillReverted | FillReinstated):
        k = event.entry.trade_id.log_index // CORRECTION_STRIDE
        corrects = (str(event.original), k)
        _fill(db, stored, event.entry, event.nettings, when=when, source=source, corrects=corrects)
    elif isinstance(event, HedgeIntended):
        cid = event.client_order_id
        db.execute(
            INSERT_HEDGE,
            (
                cid,
                symbol,
                event.side.value,
                fmt(event.quantity),
                fmt(event.reference_price),
                when,
                when,
                event.order_type if event.is_limit else None,
                None if event.limit_price is None else fmt(event.limit_price),
                event.session,
                event.reference_source,
                None if event.onchain_price is None else fmt(event.onchain_price),
            ),
        )
        for a in event.reserved:
            _open(db, a.trade_id, a.quantity.copy_negate())
            _link(db, a.trade_id, "reserved", cid, a.quantity)
        _position(
            db, symbol, when, open_=_covered(event.side, event.quantity).copy_negate(), hedges=1
        )
        db.execute(SET_PENDING, (cid, symbol))
    elif isinstance(event, HedgeSubmitted):
        state = OrderState.SUBMITTED.value
        db.execute(
            UPDATE_HEDGE,
            (state, event.broker_order_id, None, None, None, when, event.client_order_id),
        )
        db.execute(SUBMITTED_AT, (when, event.client_order_id))
    elif isinstance(event, HedgeCancelRequested):
        db.execute(CANCEL_REQUESTED, (when, event.reason, when, event.client_order_id))
    elif isinstance(event, HedgeProgressed):
        _update_hedge(
            db, event.client_order_id, OrderState.PARTIALLY_FILLED, event, reason=None, when=when
        )
        _hedged(db, symbol, event.client_order_id, event.side, event.hedged, when=when)
    elif isinstance(event, HedgeClosed):
        _closed(db, symbol, event, when)
    elif isinstance(event, InputSkipped):
        cursor = json.dumps(meta.get("cursor"), sort_keys=True)
        db.execute(INSERT_SKIPPED, (symbol, stored.sequence, event.reason, event.raw, cursor, when))


def _fill(
    db: Executor,
    stored: StoredEvent,
    fill: Fill,
    nettings: tuple[Netting, ...],
    *,
    when: str,
    source: object,
    corrects: tuple[str, int] | None = None,
) -> None:
    """Insert the trade; its own nettings take shares off it and off the older fills."""
    remaining = fill.amount
    for n in nettings:
        remaining = sub(remaining, n.quantity)
    t = fill.trade_id
    db.execute(
        INSERT_TRADE,
        (
            t.tx_hash,
            t.log_index,
            fill.symbol.ticker,
            fill.direction.value,
            fmt(fill.amount),
            fmt(fill.price),
            fill.block_number,
            fill.block_timestamp.isoformat(),
            stored.sequence,
            fmt(remaining),
            source,
            when,
            *(corrects or (None, 0)),
        ),
    )
    for n in nettings:
        _open(db, n.older, n.quantity.copy_negate())
        _link(db, t, "netted", n.older.text, n.quantity)
    signed = fill.signed_amount
    _position(db, fill.symbol.ticker, when, net=signed, open_=signed, price=fill.price, fills=1)


def _closed(db: Executor, symbol: str, event: HedgeClosed, when: str) -> None:
    cid = event.client_order_id
    _update_hedge(db, cid, event.state, event, reason=event.reason, when=when)
    _hedged(db, symbol, cid, event.side, event.hedged, when=when)
    released = ZERO
    for a in event.released:
        _link(db, a.trade_id, "reserved", cid, a.quantity.copy_negate())
        _open(db, a.trade_id, a.quantity)
        released = add(released, a.quantity)
    # Shares the hedge gave back netted against fills that arrived meanwhile:
    # one link, on the newer fill's side.
    for n in event.nettings:
        _open(db, n.older, n.quantity.copy_negate())
        _open(db, n.newer, n.quantity.copy_negate())
        _link(db, n.newer, "netted", n.older.text, n.quantity)
    _position(db, symbol, when, open_=_covered(event.side, released))
    db.execute(SET_PENDING, (None, symbol))


def _update_hedge(
    db: Executor,
    cid: str,
    state: OrderState,
    event: HedgeProgressed | HedgeClosed,
    *,
    reason: str | None,
    when: str,
) -> None:
    average = None if event.average_price is None else fmt(event.average_price)
    db.execute(
        UPDATE_HEDGE,
        (state.value, None, fmt(event.filled_quantity), average, reason, when, cid),
    )


def _hedged(
    db: Executor,
    symbol: str,
    cid: str,
    side: Direction,
    hedged: tuple[Allocation, ...],
    *,
    when: str,
) -> None:
    """Reserved shares that filled become hedged; the position's net moves by them."""
    total = ZERO
    for a in hedged:
        _link(db, a.trade_id, "reserved", cid, a.quantity.copy_negate())
        _link(db, a.trade_id, "hedged", cid, a.quantity)
        total = add(total, a.quantity)
    _position(db, symbol, when, net=_covered(side, total).copy_negate())


def _open(db: Executor, trade: TradeId, delta: Decimal) -> None:
    db.execute(OPEN_DELTA, (fmt(delta), trade.tx_hash, trade.log_index))


def _link(db: Executor, trade: TradeId, kind: str, counterpart: str, delta: Decimal) -> None:
    """Change a link by ``delta``; one that reaches zero is removed."""
    other: object = counterpart
    if kind == "netted":  # the table names the other fill by its onchain_trades id
        older = TradeId.parse(counterpart)
        row = db.fetchone(
            "SELECT id FROM onchain_trades WHERE tx_hash = ? AND log_index = ?",
            (older.tx_hash, older.log_index),
        )
        other = None if row is None else db.trade_ref(row[0])
    key = (trade.tx_hash, trade.log_index, kind, other)
    db.execute(ADD_LINK, (*key, fmt(delta)))
    if delta < 0:
        db.execute(DROP_ZERO_LINK, key)


def _position(
    db: Executor,
    symbol: str,
    when: str,
    *,
    net: Decimal = ZERO,
    open_: Decimal = ZERO,
    price: Decimal | None = None,
    hedges: int = 0,
    fills: int = 0,
) -> None:
    last = None if price is None else fmt(price)
    db.execute(CHANGE_POSITION, (symbol, fmt(net), fmt(open_), last, hedges, fills, when))


def _covered(side: Direction, quantity: Decimal) -> Decimal:
    """Signed exposure a hedge of ``side`` covers (a SELL hedge covers longs)."""
    return quantity if side is Direction.SELL else quantity.copy_negate()

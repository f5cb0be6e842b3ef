"""Turn stored events into view changes, batched into one statement per kind.

The same code runs for incremental writes and for ``rebuild-views``. Quantity
changes are expressed as deltas added with the exact ``dec_add`` SQL function,
which commutes, so applying a batch at once gives the same rows as applying its
events one by one; values that are "last one wins" are taken in event order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from ..domain.accumulator import Allocation, Netting
from ..domain.events import (
    CORRECTION_STRIDE,
    CursorCheckpointed,
    FillRecorded,
    FillReinstated,
    FillReverted,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    HedgeSubmitted,
    InputSkipped,
    StoredEvent,
)
from ..domain.fills import Direction, Fill
from ..domain.numbers import ZERO, add, fmt, sub
from ..domain.orders import OrderState

_UNSET = object()
Key = str
"""A trade's id as text (``0x…:N``)."""


@attrs.define
class _PositionDelta:
    net: Decimal = ZERO
    open: Decimal = ZERO
    filled: Decimal = ZERO
    """Signed shares of the batch's fills: they change ``net`` and ``open`` alike, so one sum."""
    fills: int = 0
    hedges: int = 0
    last_price: Decimal | None = None
    pending: Any = _UNSET
    updated_at: str = ""


@attrs.define
class Batch:
    """View changes of a batch of events, ready for ``executemany``."""

    trades: list[list[Any]] = attrs.field(factory=list)
    """Rows of ``onchain_trades``; :mod:`.writes` sets their open quantity."""
    trade_rows: dict[Key, int] = attrs.field(factory=dict)
    """Where each trade this batch inserts sits in ``trades``."""
    trade_opens: list[Decimal] = attrs.field(factory=list)
    """Each row's open quantity after its own nettings, before ``open_deltas``."""
    hedges: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    open_deltas: dict[Key, Decimal] = attrs.field(factory=dict)
    """Changes of the open quantity of trades, other than a fill's own nettings."""
    link_deltas: dict[tuple[str, int, str, str], Decimal] = attrs.field(factory=dict)
    """``(tx_hash, log_index, kind, counterpart)``: changes of allocated quantities."""
    own_links: list[tuple[str, int, str, str, str]] = attrs.field(factory=list)
    """Link rows of each fill's own nettings: they only ever add, so the upsert sums them."""
    positions: dict[str, _PositionDelta] = attrs.field(factory=dict)
    cursors: dict[str, tuple[Any, str]] = attrs.field(factory=dict)
    """Last cursor per source (JSON-encoded only when written: one per batch)."""
    skipped: list[tuple[Any, ...]] = attrs.field(factory=list)

    def add(self, stored: StoredEvent) -> None:
        event = stored.event
        when = stored.recorded_at.isoformat()
        meta = stored.metadata
        source = meta.get("source")
        if source is not None and "cursor" in meta:
            self.cursors[source] = (meta["cursor"], when)
        if isinstance(event, FillRecorded):
            self._fill(stored, event.fill, event.nettings, when, source)
        elif isinstance(event, FillReverted | FillReinstated):
            k = event.entry.trade_id.log_index // CORRECTION_STRIDE
            self._fill(
                stored,
                event.entry,
                event.nettings,
                when,
                source,
                corrects=str(event.original),
                correction=k,
            )
        elif isinstance(event, HedgeIntended):
            self._intent(stored.aggregate_id, event, when)
        elif isinstance(event, HedgeSubmitted):
            self._hedge_update(
                event.client_order_id,
                when,
                state=OrderState.SUBMITTED.value,
                broker_order_id=event.broker_order_id,
            )
        elif isinstance(event, HedgeProgressed):
            self._hedge_update(
                event.client_order_id,
                when,
                state=OrderState.PARTIALLY_FILLED.value,
                filled_quantity=fmt(event.filled_quantity),
                average_price=_opt(event.average_price),
            )
            self._hedged(stored.aggregate_id, event.client_order_id, event.side, event.hedged, when)
        elif isinstance(event, HedgeClosed):
            self._closed(stored.aggregate_id, event, when)
        elif isinstance(event, InputSkipped):
            self.skipped.append(
                (
                    stored.aggregate_id,
                    stored.sequence,
                    event.reason,
                    event.raw,
                    json.dumps(meta.get("cursor"), sort_keys=True),
                    when,
                )
            )
        elif isinstance(event, CursorCheckpointed):
            pass  # the cursor in its metadata is all it carries

    # -- per event kind ----------------------------------------------------------

    def _position(self, symbol: str, when: str) -> _PositionDelta:
        delta = self.positions.get(symbol)
        if delta is None:
            delta = self.positions[symbol] = _PositionDelta()
        delta.updated_at = when
        return delta

    def _fill(
        self,
        stored: StoredEvent,
        fill: Fill,
        nettings: tuple[Netting, ...],
        when: str,
        source: Any,
        *,
        corrects: str | None = None,
        correction: int = 0,
    ) -> None:
        amount = fill.amount
        text = fmt(amount)
        trade_id = fill.trade_id
        tx_hash, log_index = trade_id.tx_hash, trade_id.log_index
        ticker = fill.symbol.ticker
        remaining = amount
        if nettings:
            # Every netting of a fill's own event has that fill as the newer side:
            # its share comes off the inserted open quantity here, and only the
            # older side becomes a delta.
            for n in nettings:
                q = n.quantity
                self._bump(self.open_deltas, n.older.text, q, sub)
                self.own_links.append((tx_hash, log_index, "netted", n.older.text, fmt(q)))
                remaining = sub(remaining, q)
        self.trade_rows[trade_id.text] = len(self.trades)
        self.trade_opens.append(remaining)
        self.trades.append(
            [
                tx_hash,
                log_index,
                ticker,
                fill.direction.value,
                text,
                fmt(fill.price),
                fill.block_number,
                fill.block_timestamp.isoformat(),
                stored.sequence,
                text if remaining is amount else fmt(remaining),
                source,
                when,
                corrects,
                correction,
            ]
        )
        pos = self._position(ticker, when)
        pos.filled = add(pos.filled, fill.signed_amount)
        pos.fills += 1
        pos.last_price = fill.price

    def _nettings(self, nettings: tuple[Netting, ...]) -> None:
        """Nettings between trades recorded earlier (shares a closed hedge gave back)."""
        opens, links = self.open_deltas, self.link_deltas
        for n in nettings:
            older, newer, q = n.older, n.newer, n.quantity
            opens[older.text] = sub(opens.get(older.text, ZERO), q)
            opens[newer.text] = sub(opens.get(newer.text, ZERO), q)
            # One row per netting, on the newer side (the fill_links view shows
            # it from both sides).
            link = (newer.tx_hash, newer.log_index, "netted", older.text)
            links[link] = add(links.get(link, ZERO), q)

    @staticmethod
    def _bump(
        deltas: dict[Any, Decimal],
        key: Any,
        quantity: Decimal,
        op: Callable[[Decimal, Decimal], Decimal],
    ) -> None:
        # Exact (EXACT context): the default context rounds at 28 digits.
        deltas[key] = op(deltas.get(key, ZERO), quantity)

    def _hedge_update(self, cid: str, when: str, **changes: Any) -> None:
        """Merge an order update into this batch's row for ``cid`` (kept in first-seen order)."""
        row = self.hedges.get(cid)
        if row is None:
            row = self.hedges[cid] = {"client_order_id": cid, "partial": True}
        for key, value in changes.items():
            if value is not None or key in ("state",):
                row[key] = value
        row["updated_at"] = when

    def _intent(self, symbol: str, event: HedgeIntended, when: str) -> None:
        self.hedges[event.client_order_id] = {
            "client_order_id": event.client_order_id,
            "symbol": symbol,
            "side": event.side.value,
            "quantity": fmt(event.quantity),
            "reference_price": fmt(event.reference_price),
            "state": OrderState.PENDING.value,
            "broker_order_id": None,
            "filled_quantity": "0",
            "average_price": None,
            "reason": None,
            "created_at": when,
            "updated_at": when,
        }
        for alloc in event.reserved:
            t = alloc.trade_id
            self._bump(self.open_deltas, t.text, alloc.quantity, sub)
            self._bump(
                self.link_deltas,
                (t.tx_hash, t.log_index, "reserved", event.client_order_id),
                alloc.quantity,
                add,
            )
        pos = self._position(symbol, when)
        pos.open = add(pos.open, -_exposure_signed(event.side, event.quantity))
        pos.hedges += 1
        pos.pending = event.client_order_id

    def _hedged(
        self, symbol: str, cid: str, side: Direction, hedged: tuple[Allocation, ...], when: str
    ) -> None:
        total = ZERO
        for alloc in hedged:
            t = alloc.trade_id
            self._bump(
                self.link_deltas, (t.tx_hash, t.log_index, "reserved", cid), alloc.quantity, sub
            )
            self._bump(
                self.link_deltas, (t.tx_hash, t.log_index, "hedged", cid), alloc.quantity, add
            )
            total = add(total, alloc.quantity)
        pos = self._position(symbol, when)
        pos.net = add(pos.net, -_exposure_signed(side, total))

    def _closed(self, symbol: str, event: HedgeClosed, when: str) -> None:
        cid = event.client_order_id
        self._hedge_update(
            cid,
            when,
            state=event.state.value,
            filled_quantity=fmt(event.filled_quantity),
            average_price=_opt(event.average_price),
            reason=event.reason,
        )
        self._hedged(symbol, cid, event.side, event.hedged, when)
        released = ZERO
        for alloc in event.released:
            t = alloc.trade_id
            self._bump(
                self.link_deltas, (t.tx_hash, t.log_index, "reserved", cid), alloc.quantity, sub
            )
            self._bump(self.open_deltas, t.text, alloc.quantity, add)
            released = add(released, alloc.quantity)
        self._nettings(event.nettings)
        pos = self._position(symbol, when)
        pos.open = add(pos.open, _exposure_signed(event.side, released))
        pos.pending = None


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


def _exposure_signed(side: Direction, quantity: Decimal) -> Decimal:
    """Signed change of exposure a hedge of ``side`` covers (a SELL hedge covers longs)."""
    return quantity if side is Direction.SELL else -quantity

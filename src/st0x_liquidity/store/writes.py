"""Apply a projected :class:`~.projection.Batch` to the view tables: plain SQL, one statement a kind.

The same code serves each commit and ``rebuild-views``. Quantity changes stay
deltas, added in SQL with the exact ``dec_add``, which commutes, so a batch
applied at once gives the rows its events give one by one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from ..domain.numbers import EXACT, fmt
from .projection import _UNSET, Batch


class Executor(Protocol):
    """What a view write needs of a connection (aiosqlite's, in this backend)."""

    async def executemany(self, sql: str, rows: Any, /) -> Any: ...


def dec_add(a: str | None, b: str | None) -> str:
    """Exact sum of two decimal texts, in the store's one spelling (SQL ``dec_add``)."""
    return fmt(EXACT.add(Decimal(a or "0"), Decimal(b or "0")))


_TRADE = "(SELECT id FROM onchain_trades WHERE tx_hash = :tx AND log_index = :idx)"
# A netting names the older fill (by its trade id); a reservation or hedge a
# client_order_id. The table keeps fills as onchain_trades ids.
_COUNTERPART = (
    "CASE WHEN :kind = 'netted' THEN (SELECT id FROM onchain_trades "
    "WHERE tx_hash = :ctx AND log_index = :cidx) ELSE :cp END"
)

INSERT_TRADE = (
    "INSERT INTO onchain_trades (tx_hash, log_index, symbol, direction, amount, price, "
    "block_number, block_timestamp, arrival, open_quantity, source, recorded_at, corrects, "
    "correction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_HEDGE = (
    "UPDATE hedge_orders SET state = ?, broker_order_id = COALESCE(?, broker_order_id), "
    "filled_quantity = COALESCE(?, filled_quantity), "
    "average_price = COALESCE(?, average_price), reason = COALESCE(?, reason), updated_at = ? "
    "WHERE client_order_id = ?"
)
INSERT_HEDGE = (
    "INSERT INTO hedge_orders (client_order_id, symbol, side, quantity, reference_price, state, "
    "broker_order_id, filled_quantity, average_price, reason, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (client_order_id) DO UPDATE SET state = excluded.state, "
    "broker_order_id = COALESCE(excluded.broker_order_id, broker_order_id), "
    "filled_quantity = excluded.filled_quantity, "
    "average_price = COALESCE(excluded.average_price, average_price), "
    "reason = COALESCE(excluded.reason, reason), updated_at = excluded.updated_at"
)
OPEN_DELTA = (
    "UPDATE onchain_trades SET open_quantity = dec_add(open_quantity, :delta) "
    "WHERE tx_hash = :tx AND log_index = :idx"
)
# A fill that is not there leaves a NULL trade and fails the transaction on NOT NULL.
ADD_LINK = (
    f"INSERT INTO fill_allocations (trade, kind, counterpart, quantity) "
    f"VALUES ({_TRADE}, :kind, {_COUNTERPART}, :qty) "
    "ON CONFLICT (trade, kind, counterpart) DO UPDATE SET quantity = dec_add(quantity, excluded.quantity)"
)
DROP_ZERO_LINK = (
    f"DELETE FROM fill_allocations WHERE trade = {_TRADE} AND kind = :kind "
    f"AND counterpart = {_COUNTERPART} AND quantity = '0'"
)
UPSERT_POSITION = (
    "INSERT INTO positions (symbol, net, open_quantity, last_price, hedges_placed, "
    "pending_hedge, fills, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (symbol) DO UPDATE SET net = dec_add(net, excluded.net), "
    "open_quantity = dec_add(open_quantity, excluded.open_quantity), "
    "last_price = COALESCE(excluded.last_price, last_price), "
    "hedges_placed = hedges_placed + excluded.hedges_placed, "
    "fills = fills + excluded.fills, updated_at = excluded.updated_at"
)
SET_PENDING = "UPDATE positions SET pending_hedge = ? WHERE symbol = ?"
UPSERT_CURSOR = (
    "INSERT INTO source_cursors (source, cursor, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at"
)
INSERT_SKIPPED = "INSERT INTO skipped_inputs VALUES (?, ?, ?, ?, ?, ?)"


async def apply(db: Executor, batch: Batch) -> None:
    """Write ``batch``'s view changes (inside the caller's transaction)."""
    for sql, rows in view_statements(batch):
        if rows:
            await db.executemany(sql, rows)


def view_statements(batch: Batch) -> list[tuple[str, Sequence[Any]]]:
    """The statements, in order, with their rows.

    Hedge updates come before inserts: a new order for a symbol is intended
    only after the previous one closed, so the one-open-hedge-per-symbol index
    holds at every row.
    """
    trades, open_deltas = _trades_with_own_deltas(batch)
    updates, inserts = _hedge_rows(batch)
    links, shrunk = _link_rows(batch)
    positions, pending = _position_rows(batch)
    cursors = [(s, json.dumps(c, sort_keys=True), w) for s, (c, w) in batch.cursors.items()]
    return [
        (INSERT_TRADE, trades),
        (UPDATE_HEDGE, updates),
        (INSERT_HEDGE, inserts),
        (OPEN_DELTA, open_deltas),
        (ADD_LINK, links),
        (DROP_ZERO_LINK, shrunk),
        (UPSERT_POSITION, positions),
        (SET_PENDING, pending),
        (UPSERT_CURSOR, cursors),
        (INSERT_SKIPPED, batch.skipped),
    ]


def _split(text: str) -> tuple[str, int]:
    tx, _, idx = text.rpartition(":")
    return tx, int(idx)


def _trades_with_own_deltas(batch: Batch) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """Trades this batch inserts take their later open-quantity changes in the row itself."""
    trades = [list(row) for row in batch.trades]
    deltas = []
    for trade, delta in batch.open_deltas.items():
        i = batch.trade_rows.get(trade)
        if i is not None:
            trades[i][9] = fmt(EXACT.add(batch.trade_opens[i], delta))
        elif delta:
            tx, idx = _split(trade)
            deltas.append({"tx": tx, "idx": idx, "delta": fmt(delta)})
    return trades, deltas


def _link(tx: str, idx: int, kind: str, counterpart: str, qty: str | None = None) -> dict[str, Any]:
    ctx, cidx = _split(counterpart) if kind == "netted" else (None, None)
    row = {"tx": tx, "idx": idx, "kind": kind, "ctx": ctx, "cidx": cidx, "cp": counterpart}
    if qty is not None:
        row["qty"] = qty
    return row


def _link_rows(batch: Batch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    links = [_link(tx, idx, kind, cp, qty) for tx, idx, kind, cp, qty in batch.own_links]
    shrunk = []
    for (tx, idx, kind, cp), delta in batch.link_deltas.items():
        if delta:
            links.append(_link(tx, idx, kind, cp, fmt(delta)))
            if delta < 0:  # only links that shrank can have reached zero
                shrunk.append(_link(tx, idx, kind, cp))
    return links, shrunk


def _hedge_rows(batch: Batch) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    updates, inserts = [], []
    for row in batch.hedges.values():
        if row.get("partial"):
            updates.append(
                (
                    row["state"],
                    row.get("broker_order_id"),
                    row.get("filled_quantity"),
                    row.get("average_price"),
                    row.get("reason"),
                    row["updated_at"],
                    row["client_order_id"],
                )
            )
        else:
            inserts.append(
                (
                    row["client_order_id"],
                    row["symbol"],
                    row["side"],
                    row["quantity"],
                    row["reference_price"],
                    row["state"],
                    row.get("broker_order_id"),
                    row.get("filled_quantity") or "0",
                    row.get("average_price"),
                    row.get("reason"),
                    row["created_at"],
                    row["updated_at"],
                )
            )
    return updates, inserts


def _position_rows(batch: Batch) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rows, pending = [], []
    for symbol, p in batch.positions.items():
        pending_set = p.pending is not _UNSET
        rows.append(
            (
                symbol,
                fmt(EXACT.add(p.net, p.filled)),
                fmt(EXACT.add(p.open, p.filled)),
                None if p.last_price is None else fmt(p.last_price),
                p.hedges,
                p.pending if pending_set else None,
                p.fills,
                p.updated_at,
            )
        )
        if pending_set:
            pending.append((p.pending, symbol))
    return rows, pending

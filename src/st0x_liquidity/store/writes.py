"""Turn a projected :class:`Batch` into the writer's plan: statement names and rows.

Pure: it runs on the event loop thread; :mod:`.write_worker` runs the plan.
Quantity changes stay deltas, added in SQL with the exact ``dec_add``, which
commutes, so a batch applied at once gives the rows its events give one by one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..domain.numbers import EXACT, fmt
from .projection import _UNSET, Batch
from .write_worker import Row


def view_plan(batch: Batch) -> list[tuple[str, Sequence[Row]]]:
    """The statements (by name, with their rows) that apply ``batch`` to the views."""
    out: list[tuple[str, Sequence[Row]]] = []
    trades = batch.trades
    deltas = []
    if batch.open_deltas:
        # A trade inserted by this batch takes later changes of its open quantity
        # (nettings as the older side, reservations) in its inserted row (exact
        # sum), instead of an UPDATE after. Set in place from the row's own open
        # quantity: calling this twice gives the same rows.
        where, opens = batch.trade_rows, batch.trade_opens
        for trade, delta in batch.open_deltas.items():
            i = where.get(trade)
            if i is not None:
                trades[i][9] = fmt(_add(opens[i], delta))
            elif delta:
                deltas.append((trade, fmt(delta)))
    if trades:
        out.append(("trades", trades))
    if batch.hedges:
        out.extend(_hedge_statements(batch))
    if deltas:
        out.append(("open_deltas", deltas))
    if batch.link_deltas or batch.own_links:
        links: list[Row] = list(batch.own_links)
        shrunk = []
        for key, d in batch.link_deltas.items():
            if d:
                links.append((*key, fmt(d)))
                if d < 0:  # only links that shrank can have reached zero
                    shrunk.append(key)
        out.append(("links", links))
        out.append(("zero_links", shrunk))
    if batch.positions:
        rows = []
        pending = []
        for symbol, p in batch.positions.items():
            pending_set = p.pending is not _UNSET
            rows.append(
                (
                    symbol,
                    fmt(_add(p.net, p.filled)),
                    fmt(_add(p.open, p.filled)),
                    None if p.last_price is None else fmt(p.last_price),
                    p.hedges,
                    p.pending if pending_set else None,
                    p.fills,
                    p.updated_at,
                )
            )
            if pending_set:
                pending.append((symbol, p.pending))
        out.append(("positions", rows))
        out.append(("pending_hedges", pending))
    if batch.cursors:
        cursors = [(s, json.dumps(c, sort_keys=True), w) for s, (c, w) in batch.cursors.items()]
        out.append(("cursors", cursors))
    if batch.skipped:
        out.append(("skipped", batch.skipped))
    return out


_add = EXACT.add


def _hedge_statements(batch: Batch) -> list[tuple[str, Sequence[Row]]]:
    """Updates of orders intended earlier first, then this batch's new orders in order.

    At most one order per symbol is open, and a new one is intended only after
    the previous one closed, so with the updates first the
    one-open-hedge-per-symbol index holds at every row.
    """
    updates = []
    inserts = []
    for row in batch.hedges.values():
        if row.get("partial"):
            updates.append(
                (
                    row["client_order_id"],
                    row["state"],
                    row.get("broker_order_id"),
                    row.get("filled_quantity"),
                    row.get("average_price"),
                    row.get("reason"),
                    row["updated_at"],
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
    return [("hedge_updates", updates), ("hedge_inserts", inserts)]

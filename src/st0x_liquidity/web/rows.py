"""The page's rows: the store's records shaped into the JSON the dashboard draws.

Pure: the façade (``web/state.py``) reads the records through its read models
and hands them here, so the shapes (documented in ``docs/dashboard.md``,
"WebSocket") are one function each and need no database to check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain.numbers import WIDE, fmt
from ..store.read_models import HedgeCoverage, HedgeOrderView, Link, PositionView, TradeView
from .latency import seconds_between

OPEN_STATES = ("pending", "submitted", "partially_filled")
TERMINAL_STATES = ("filled", "failed", "cancelled")


def money(value: Decimal) -> Decimal:
    """Rounded to the cent, as the page shows dollar amounts."""
    return value.quantize(Decimal("0.01"), context=WIDE)


def position_row(p: PositionView, realized: Decimal) -> dict[str, Any]:
    """One position with its unhedged dollars (at the last price) and realized P&L."""
    unhedged = Decimal(p.open_quantity)
    price = None if p.last_price is None else Decimal(p.last_price)
    return {
        "symbol": p.symbol,
        "net": p.net,
        "unhedged": p.open_quantity,
        "unhedged_usd": None if price is None else fmt(money(unhedged * price)),
        "last_price": p.last_price,
        "fills": p.fills,
        "hedges_placed": p.hedges_placed,
        "pending_hedge": None if p.pending_hedge is None else p.pending_hedge.to_json(),
        "realized_pnl": fmt(realized),
        "updated_at": p.updated_at,
    }


def merge_positions(
    cache: list[dict[str, Any]], rows: list[dict[str, Any]], *, every: bool
) -> list[dict[str, Any]]:
    """The cached rows of every symbol after a read of all (``every``) or some of them."""
    if every:
        return rows
    merged = {p["symbol"]: p for p in cache}
    merged.update({p["symbol"]: p for p in rows})
    return [merged[k] for k in sorted(merged)]


def fill_row(
    t: TradeView, links: Sequence[Link], hedges: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """One fill with what netted it and the hedges covering it (``hedges`` by client id)."""
    recorded = t.recorded_at
    netted = []
    covering = []
    for link in links:
        kind, other, qty = link.kind, link.counterpart, link.quantity
        if kind == "netted":
            netted.append({"against": other, "quantity": qty})
        else:
            hedge = hedges.get(other, {})
            covering.append(
                {
                    "client_order_id": other,
                    "kind": kind,
                    "quantity": qty,
                    "side": hedge.get("side"),
                    "state": hedge.get("state"),
                    "price": hedge.get("average_price"),
                    "closed_at": hedge.get("updated_at")
                    if hedge.get("state") in TERMINAL_STATES
                    else None,
                    "latency_seconds": round(seconds_between(recorded, hedge["updated_at"]), 3)
                    if kind == "hedged" and hedge.get("state") in TERMINAL_STATES
                    else None,
                }
            )
    return {
        "trade_id": t.trade_id,
        "tx_hash": t.tx_hash,
        "log_index": t.log_index,
        "symbol": t.symbol,
        "direction": t.direction,
        "amount": t.amount,
        "price": t.price,
        "notional": fmt(money(Decimal(t.amount) * Decimal(t.price))),
        "block_number": t.block_number,
        "block_timestamp": t.block_timestamp,
        "recorded_at": recorded,
        "open": t.open_quantity,
        "netted": netted,
        "hedges": covering,
    }


def coverage_by_hedge(coverage: Sequence[HedgeCoverage]) -> dict[str, list[dict[str, str]]]:
    """The fills each hedge covers or holds reserved, by client order id."""
    covered: dict[str, list[dict[str, str]]] = {}
    for c in coverage:
        covered.setdefault(c.client_order_id, []).append(
            {"trade_id": c.trade_id, "kind": c.kind, "quantity": c.quantity}
        )
    return covered


def hedge_row(
    h: HedgeOrderView,
    covered: Mapping[str, list[dict[str, str]]],
    now: datetime,
    threshold: Callable[[str], float],
) -> dict[str, Any]:
    """One hedge order; ``stuck`` when open and unchanged longer than ``threshold(id)``."""
    age = (now - datetime.fromisoformat(h.updated_at)).total_seconds()
    return {
        **h.to_json(),
        "open": h.state in OPEN_STATES,
        "stuck": h.state in OPEN_STATES and age > threshold(h.client_order_id),
        "fills": covered.get(h.client_order_id, []),
    }

"""Read models for operators: positions and the fill↔hedge audit trail.

The JSON shapes built here are a stable, documented interface
(``docs/cli.md``): other tools parse them. Quantities are decimal strings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .domain.numbers import ZERO, add, fmt
from .store.read_models import AuditReads, HedgeOrderView


async def positions_report(
    reads: AuditReads, sessions: Callable[[str], dict[str, Any] | None] | None = None
) -> list[dict[str, Any]]:
    """Positions with their open lots and pending hedge; ``sessions`` (ticker → the
    symbol's session now and next hedge time, or None) adds a ``session`` entry."""
    lots: dict[str, list[dict[str, str]]] = {}
    positions = await reads.positions()
    for lot in await reads.open_lots():
        lots.setdefault(lot.symbol, []).append(
            {"trade_id": lot.trade_id, "direction": lot.direction, "open": lot.open_quantity}
        )
    return [
        {
            "symbol": p.symbol,
            "net": p.net,
            "open_quantity": p.open_quantity,
            "last_price": p.last_price,
            "fills": p.fills,
            "hedges_placed": p.hedges_placed,
            "pending_hedge": None if p.pending_hedge is None else p.pending_hedge.to_json(),
            "open_lots": lots.get(p.symbol, []),
            "session": None if sessions is None else sessions(p.symbol),
        }
        for p in positions
    ]


async def audit_report(
    reads: AuditReads, *, symbol: str | None = None, tx_hash: str | None = None
) -> dict[str, Any]:
    trades = await reads.trades(symbol=symbol, tx_hash=tx_hash)
    links = await reads.links([t.key for t in trades])
    hedge_rows = await reads.hedge_orders(symbol=symbol)
    hedges: dict[str, HedgeOrderView] = {h.client_order_id: h for h in hedge_rows}

    fills = []
    covered: dict[str, list[dict[str, str]]] = {}
    for t in trades:
        trade_id = t.trade_id
        netted: list[dict[str, str]] = []
        hedged: list[dict[str, Any]] = []
        reserved: list[dict[str, Any]] = []
        total = Decimal(t.open_quantity)
        for link in links.get(t.key, []):
            kind, other, qty = link.kind, link.counterpart, link.quantity
            total = add(total, Decimal(qty))
            if kind == "netted":
                netted.append({"against": other, "quantity": qty})
            else:
                hedge = hedges.get(other)
                entry = {
                    "client_order_id": other,
                    "quantity": qty,
                    "price": hedge.average_price if hedge else None,
                    "state": hedge.state if hedge else None,
                    "broker_order_id": hedge.broker_order_id if hedge else None,
                }
                (hedged if kind == "hedged" else reserved).append(entry)
                covered.setdefault(other, []).append(
                    {"trade_id": trade_id, "quantity": qty, "kind": kind}
                )
        fills.append(
            {
                "trade_id": trade_id,
                "tx_hash": t.tx_hash,
                "log_index": t.log_index,
                "symbol": t.symbol,
                "direction": t.direction,
                "amount": t.amount,
                "price": t.price,
                "block_number": t.block_number,
                "block_timestamp": t.block_timestamp,
                "netted": netted,
                "hedged": hedged,
                "reserved": reserved,
                "open": t.open_quantity,
                "explained": total == Decimal(t.amount),
                "corrects": t.corrects,
            }
        )
    hedge_list = []
    for h in hedge_rows:
        if tx_hash and h.client_order_id not in covered:
            continue
        hedge_list.append({**h.to_json(), "fills": covered.get(h.client_order_id, [])})
    return {
        "fills": fills,
        "hedges": hedge_list,
        "reconciliation": await last_reconciliation(reads),
    }


async def last_reconciliation(reads: AuditReads) -> dict[str, Any] | None:
    """The last ``ReconciliationChecked`` (its JSON shape plus ``at``), or None."""
    logged = await reads.last_reconciliation()
    if logged is None:
        return None
    data = json.loads(logged.payload)
    return {
        "at": logged.recorded_at,
        "status": data["status"],
        "symbols": data.get("symbols") or [],
        "skipped": data.get("skipped") or [],
        "tolerance": data.get("tolerance"),
        "detail": data.get("detail"),
    }


def sum_quantities(values: list[str]) -> str:
    total = ZERO
    for value in values:
        total = add(total, Decimal(value))
    return fmt(total)

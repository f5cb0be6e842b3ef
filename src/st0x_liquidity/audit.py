"""Read models for operators: positions and the fill↔hedge audit trail.

The JSON shapes built here are a stable, documented interface
(``docs/cli.md``): other tools parse them. Quantities are decimal strings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .domain.numbers import ZERO, add, fmt
from .store.hedge_rows import HEDGE_ORDER_COLUMNS, hedge_order_json
from .store.links import links_of
from .store.sqlite import SqliteStore


async def positions_report(store: SqliteStore) -> list[dict[str, Any]]:
    rows = await store.fetch(
        "SELECT p.symbol, p.net, p.open_quantity, p.last_price, p.fills, p.hedges_placed, "
        "p.pending_hedge, h.side, h.quantity, h.filled_quantity, h.state "
        "FROM positions p LEFT JOIN hedge_orders h ON h.client_order_id = p.pending_hedge "
        "ORDER BY p.symbol"
    )
    lots: dict[str, list[dict[str, str]]] = {}
    for symbol, tx, idx, direction, open_qty in await store.fetch(
        "SELECT symbol, tx_hash, log_index, direction, open_quantity FROM onchain_trades "
        "WHERE open_quantity != '0' ORDER BY symbol, arrival"
    ):
        lots.setdefault(symbol, []).append(
            {"trade_id": f"{tx}:{idx}", "direction": direction, "open": open_qty}
        )
    result = []
    for r in rows:
        pending = None
        if r[6] is not None:
            pending = {
                "client_order_id": r[6],
                "side": r[7],
                "quantity": r[8],
                "filled_quantity": r[9],
                "state": r[10],
            }
        result.append(
            {
                "symbol": r[0],
                "net": r[1],
                "open_quantity": r[2],
                "last_price": r[3],
                "fills": r[4],
                "hedges_placed": r[5],
                "pending_hedge": pending,
                "open_lots": lots.get(r[0], []),
            }
        )
    return result


async def audit_report(
    store: SqliteStore, *, symbol: str | None = None, tx_hash: str | None = None
) -> dict[str, Any]:
    where = []
    params: list[Any] = []
    if symbol:
        where.append("t.symbol = ?")
        params.append(symbol)
    if tx_hash:
        where.append("t.tx_hash = ?")
        params.append(tx_hash.lower())
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    trades = await store.fetch(
        "SELECT t.tx_hash, t.log_index, t.symbol, t.direction, t.amount, t.price, t.block_number, "
        f"t.block_timestamp, t.open_quantity, t.corrects FROM onchain_trades t {clause} "
        "ORDER BY t.symbol, t.arrival",
        params,
    )
    links = {
        f"{tx}:{idx}": found
        for (tx, idx), found in (
            await links_of(store.fetch, [(t[0], int(t[1])) for t in trades])
        ).items()
    }
    hedge_rows = await store.fetch(
        f"SELECT {HEDGE_ORDER_COLUMNS} FROM hedge_orders "
        + ("WHERE symbol = ? " if symbol else "")
        + "ORDER BY created_at, client_order_id",
        [symbol] if symbol else [],
    )
    hedges = {r[0]: r for r in hedge_rows}

    fills = []
    covered: dict[str, list[dict[str, str]]] = {}
    for tx, idx, sym, direction, amount, price, block, ts, open_qty, corrects in trades:
        trade_id = f"{tx}:{idx}"
        netted: list[dict[str, str]] = []
        hedged: list[dict[str, Any]] = []
        reserved: list[dict[str, Any]] = []
        total = Decimal(open_qty)
        for kind, other, qty in links.get(trade_id, []):
            total = add(total, Decimal(qty))
            if kind == "netted":
                netted.append({"against": other, "quantity": qty})
            else:
                hedge = hedges.get(other)
                entry = {
                    "client_order_id": other,
                    "quantity": qty,
                    "price": hedge[8] if hedge else None,
                    "state": hedge[5] if hedge else None,
                    "broker_order_id": hedge[6] if hedge else None,
                }
                (hedged if kind == "hedged" else reserved).append(entry)
                covered.setdefault(other, []).append(
                    {"trade_id": trade_id, "quantity": qty, "kind": kind}
                )
        fills.append(
            {
                "trade_id": trade_id,
                "tx_hash": tx,
                "log_index": idx,
                "symbol": sym,
                "direction": direction,
                "amount": amount,
                "price": price,
                "block_number": block,
                "block_timestamp": ts,
                "netted": netted,
                "hedged": hedged,
                "reserved": reserved,
                "open": open_qty,
                "explained": total == Decimal(amount),
                "corrects": corrects,
            }
        )
    hedge_list = []
    for r in hedge_rows:
        if tx_hash and r[0] not in covered:
            continue
        hedge_list.append({**hedge_order_json(r), "fills": covered.get(r[0], [])})
    return {"fills": fills, "hedges": hedge_list}


def sum_quantities(values: list[str]) -> str:
    total = ZERO
    for value in values:
        total = add(total, Decimal(value))
    return fmt(total)

"""Unhedged exposure: how much the books hold that no hedge covers yet.

Two uses. ``status.exposure`` (page and ``/metrics``) totals the unhedged
dollars and names the oldest fill still open. And an alert that means hedging
is not happening (a broker error, a pause) turns critical once exposure grows
while it lasts: :class:`ExposureWatch` remembers each symbol's unhedged
quantity when such a condition began. Pure: the façade hands in the position
rows (``web/rows.py``) and the records it read.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs

from ..domain.numbers import fmt
from ..store.read_models import OpenLotView, TradeView


@attrs.define
class ExposureWatch:
    """Per condition (an alert kind), each symbol's unhedged quantity when it began."""

    base: dict[str, dict[str, Decimal]] = attrs.field(factory=dict)

    def grew(self, kind: str, active: bool, positions: Sequence[dict[str, Any]]) -> bool:
        """While ``kind`` is active: has any symbol's unhedged exposure grown since it began?"""
        current = {p["symbol"]: abs(Decimal(p["unhedged"])) for p in positions}
        if not active:
            self.base.pop(kind, None)
            return False
        base = self.base.setdefault(kind, current)
        return any(q > base.get(sym, Decimal(0)) for sym, q in current.items())


def unhedged_total(positions: Sequence[dict[str, Any]]) -> tuple[Decimal, list[str]]:
    """Total unhedged USD (gross over symbols), and the symbols with no price to value."""
    total = Decimal(0)
    unpriced = []
    for p in positions:
        if Decimal(p["unhedged"]) == 0:
            continue
        if p["unhedged_usd"] is None:
            unpriced.append(p["symbol"])
        else:
            total += abs(Decimal(p["unhedged_usd"]))
    return total, unpriced


def first_open_fills(lots: Sequence[OpenLotView]) -> list[str]:
    """Each symbol's oldest open fill (``lots`` come by symbol then arrival)."""
    firsts: dict[str, str] = {}
    for lot in lots:
        firsts.setdefault(lot.symbol, lot.trade_id)
    return list(firsts.values())


def exposure_json(
    total: Decimal, unpriced: list[str], open_fills: int, firsts: Sequence[TradeView]
) -> dict[str, Any]:
    """``status.exposure``: ``firsts`` are the trades of :func:`first_open_fills`."""
    oldest = None
    if firsts:
        t = min(firsts, key=lambda t: t.recorded_at)
        oldest = {
            "trade_id": t.trade_id,
            "symbol": t.symbol,
            "open": t.open_quantity,
            "recorded_at": t.recorded_at,
            "block_timestamp": t.block_timestamp,
        }
    return {
        "unhedged_usd": fmt(total),
        "unpriced_symbols": unpriced,
        "open_fills": open_fills,
        "oldest_unhedged": oldest,
    }

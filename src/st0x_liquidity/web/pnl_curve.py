"""The dashboard's P&L: trades folded into the FIFO book as the log is followed.

The page and ``/metrics`` show the same realized P&L as ``report --summary``, so
this folds the very trades the report reads (``reporting.pnl``) into the same
book and totals; what it adds is the cumulative curve the page draws, one point
per trade, kept in memory (bounded) so a new page needs no second fold.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from ..domain.numbers import EXACT, fmt
from ..domain.pnl import PnlBook, PnlRow, PnlTotals, PnlTrade, summarize_totals
from ..reporting.pnl import summary_to_json

MAX_SERIES = 5000
"""Points of the cumulative curve kept (the oldest go first)."""


@attrs.define
class PnlCurve:
    """The FIFO book, its per-symbol totals and the cumulative curve of realized P&L."""

    book: PnlBook = attrs.field(factory=PnlBook)
    totals: dict[str, PnlTotals] = attrs.field(factory=dict)
    series: list[dict[str, Any]] = attrs.field(factory=list)
    """One point per trade; ``_total`` (a Decimal) carries the running sum between points."""

    def add(self, trade: PnlTrade) -> dict[str, Any]:
        """Fold one trade; return the curve's new point."""
        row = self.book.apply(trade)
        self.totals.setdefault(trade.symbol, PnlTotals()).add_row(row)
        point = self._point(row)
        self.series.append(point)
        return point

    def _point(self, row: PnlRow) -> dict[str, Any]:
        total = EXACT.add(
            self.series[-1]["_total"] if self.series else Decimal(0), row.realized or Decimal(0)
        )
        t = row.trade
        return {
            "_total": total,
            "seq": t.position,
            "time": t.time.isoformat(),
            "symbol": t.symbol,
            "venue": t.venue,
            "trade_id": t.trade_id,
            "realized": None if row.realized is None else fmt(row.realized),
            "cumulative_symbol": fmt(row.cumulative),
            "cumulative_total": fmt(total),
        }

    def trim(self) -> None:
        """Forget the oldest points beyond :data:`MAX_SERIES`."""
        if len(self.series) > MAX_SERIES:
            del self.series[: len(self.series) - MAX_SERIES]

    def summary(self) -> dict[str, Any]:
        """Per symbol and in total, as ``report --summary`` prints them."""
        summaries = [summary_to_json(s) for s in summarize_totals(self.totals, self.book)]
        return {"symbols": summaries[:-1], "total": summaries[-1]}

    def thinned(self, points: int = 1000) -> list[dict[str, Any]]:
        """The cumulative P&L curve, thinned to about ``points`` points (last one exact)."""
        series = self.series
        if len(series) > points:
            step = len(series) / points
            series = [series[int(i * step)] for i in range(points)] + [series[-1]]
        return [{k: v for k, v in p.items() if k != "_total"} for p in series]

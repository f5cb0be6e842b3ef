"""What extended-hours limit hedges cost against the onchain fills they covered.

A limit is priced away from its reference (the offset towards crossing, wider
in the close-flatten window) and may fill away from the onchain price; the P&L
summary shows that slippage beside realized P&L, per symbol, from the hedge
orders' view (each limit records the onchain price it was bounded against).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..domain.fills import Direction
from ..domain.numbers import fmt
from ..domain.pnl import LimitSlippage, limit_slippage
from ..store.read_models import PnlInputs


async def read_slippage(reads: PnlInputs) -> dict[str, LimitSlippage]:
    rows = await reads.hedge_orders()
    return limit_slippage(
        (
            h.symbol,
            Direction(h.side),
            Decimal(h.filled_quantity),
            None if h.average_price is None else Decimal(h.average_price),
            None if h.onchain_price is None else Decimal(h.onchain_price),
        )
        for h in rows
        if h.order_type == "limit"
    )


def slippage_to_json(slippage: dict[str, LimitSlippage]) -> dict[str, Any]:
    return {
        symbol: {
            "orders": s.orders,
            "shares": fmt(s.shares),
            "usd": fmt(s.usd),
            "bps": None if s.bps is None else fmt(s.bps.quantize(Decimal("0.01"))),
        }
        for symbol, s in sorted(slippage.items())
    }

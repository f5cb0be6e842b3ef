"""Helpers to make the events a test records by hand."""

from __future__ import annotations

from decimal import Decimal

from st0x_liquidity.domain.accumulator import Settlement, SymbolBook
from st0x_liquidity.domain.events import HedgeClosed, NewEvent, position_event
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.orders import OrderState


def hedge_closed(
    book: SymbolBook,
    cid: str,
    side: Direction,
    filled: Decimal,
    price: Decimal | None,
    settlement: Settlement,
    *,
    state: OrderState = OrderState.CANCELLED,
    reason: str | None = "expired",
) -> NewEvent:
    """The event that closes ``cid`` with what ``book.finish`` settled."""
    return position_event(
        book.symbol,
        HedgeClosed(
            cid,
            side,
            state,
            filled,
            price,
            reason,
            settlement.hedged,
            settlement.released,
            settlement.nettings,
        ),
    )

"""Which events are P&L trades, decoded the fast way and the validating way alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from st0x_liquidity.domain.accumulator import Allocation
from st0x_liquidity.domain.events import DomainEvent, FillRecorded, HedgeClosed
from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.domain.orders import OrderState
from st0x_liquidity.domain.pnl import PnlTrade
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.reporting.pnl import _trade_from_decoded, trade_from_event
from st0x_liquidity.store.codec import event_to_payload

NOW = "2026-11-26T01:00:00+00:00"
TID = TradeId(f"0x{7:064x}", 2)


def closed(state: OrderState, filled: str, price: str | None) -> HedgeClosed:
    return HedgeClosed(
        "st0x-db-AAPL-1",
        Direction.BUY,
        state,
        Decimal(filled),
        None if price is None else Decimal(price),
        None,
        (Allocation(TID, Decimal(filled)),) if Decimal(filled) else (),
        (),
        (),
    )


def as_trade(event_type: str, event: DomainEvent) -> PnlTrade | None:
    payload = json.dumps(event_to_payload(event))
    fast = trade_from_event(9, "AAPL", event_type, payload, NOW)
    slow = _trade_from_decoded(
        9, "AAPL", event_type, json.loads(payload), datetime.fromisoformat(NOW)
    )
    assert fast == slow
    return fast


def test_fill_is_an_onchain_trade_of_the_base_symbol() -> None:
    fill = Fill(
        TID,
        Symbol.parse("tAAPL"),
        Direction.SELL,
        Decimal("0.123456789012345678"),
        Decimal("190.5"),
        5,
        datetime(2026, 1, 2, tzinfo=UTC),
    )
    trade = as_trade("FillRecorded", FillRecorded(fill))
    assert trade is not None
    assert (trade.symbol, trade.venue, trade.trade_id) == ("AAPL", "onchain", str(TID))
    assert trade.quantity == Decimal("0.123456789012345678")
    assert trade.trade_time == datetime(2026, 1, 2, tzinfo=UTC)


def test_closed_hedges_count_what_filled() -> None:
    full = as_trade("HedgeClosed", closed(OrderState.FILLED, "2", "101.25"))
    assert full is not None and full.quantity == 2 and full.venue == "broker"
    partial = as_trade("HedgeClosed", closed(OrderState.CANCELLED, "0.4", "100"))
    assert partial is not None and partial.quantity == Decimal("0.4")
    assert as_trade("HedgeClosed", closed(OrderState.FAILED, "0", None)) is None
    assert as_trade("HedgeClosed", closed(OrderState.FILLED, "1", None)) is None  # no price


def test_other_events_are_not_trades() -> None:
    assert trade_from_event(1, "AAPL", "HedgeIntended", "{}", NOW) is None
    assert trade_from_event(1, "AAPL", "CursorCheckpointed", "{}", NOW) is None

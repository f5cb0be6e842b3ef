"""The Broker API executor outside regular hours, against the fake over HTTP.

Same code as the Trading API executor (``st0x_alpaca.common``); this checks
the Broker API's own paths: ``/v1/calendar`` (whose ``session_open`` /
``session_close`` Alpaca marks deprecated), ``/v1/assets``, and the
account-scoped configuration, orders, cancel and positions.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from st0x_alpaca_broker import AlpacaBrokerExecutor
from st0x_testing.fake_alpaca import NEW_YORK
from st0x_testing.fake_alpaca_broker import ACCOUNT_ID, FakeAlpacaBroker

from st0x_liquidity import (
    Direction,
    ExtendedHoursExecutor,
    LimitOrder,
    OrderState,
    Session,
    Symbol,
    SymbolEligibility,
)

MONDAY = date(2026, 3, 9)
AAPL = Symbol("AAPL")
SCOPE = f"/v1/trading/accounts/{ACCOUNT_ID}"


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), NEW_YORK).astimezone(UTC)


@pytest.fixture
def session_fake(broker_fake: FakeAlpacaBroker) -> FakeAlpacaBroker:
    broker_fake.market_open = None
    broker_fake.clock.set(ny(MONDAY, 21))  # overnight, belonging to Tuesday
    broker_fake.set_price("AAPL", "190.25")
    broker_fake.positions["AAPL"] = Decimal(10)
    return broker_fake


async def test_broker_api_paths(session_fake: FakeAlpacaBroker, make_broker_executor: Any) -> None:
    executor: AlpacaBrokerExecutor = await make_broker_executor(
        now=session_fake.now, overnight_trading=True
    )
    assert isinstance(executor, ExtendedHoursExecutor)
    assert executor.overnight_available() is True

    days = await executor.trading_days(MONDAY, MONDAY + timedelta(days=1))
    assert [d.extended_close for d in days] == [ny(MONDAY, 20), ny(MONDAY + timedelta(days=1), 20)]
    session_fake.calendar_session_fields = False  # deprecated: the 04:00/20:00 fallback
    [day] = await executor.trading_days(MONDAY, MONDAY)
    assert (day.extended_open, day.extended_close) == (ny(MONDAY, 4), ny(MONDAY, 20))

    assert await executor.eligibility([AAPL]) == {
        AAPL: SymbolEligibility(extended=True, overnight=True, overnight_halted=False)
    }
    order = LimitOrder(
        AAPL, Direction.SELL, Decimal("2.5"), "eh-broker-1", Decimal("190.10"),
        Session.OVERNIGHT, Decimal("190.25"), "broker_mark",
    )
    placed = await executor.place_limit_order(order)
    assert placed.state is OrderState.SUBMITTED
    body = session_fake.order_bodies[-1]
    assert (body["type"], body["time_in_force"], body["extended_hours"], body["limit_price"]) == (
        "limit", "day", True, "190.1"
    )
    filled = await executor.order_status(placed.broker_order_id)
    assert (filled.state, filled.filled_quantity) == (OrderState.FILLED, Decimal("2.5"))
    assert session_fake.orders[placed.broker_order_id].session == "overnight"
    assert await executor.position_mark(AAPL) == Decimal("190.25")

    session_fake.set_price("AAPL", "180")
    waiting = await executor.place_limit_order(
        LimitOrder(
            AAPL, Direction.SELL, Decimal(1), "eh-broker-2", Decimal("190.10"),
            Session.OVERNIGHT, Decimal("190.25"), "broker_mark",
        )
    )
    assert (await executor.cancel_order(waiting.broker_order_id)).state is OrderState.CANCELLED

    paths = {p.split("?")[0] for _m, p, _t in session_fake.requests}
    assert {
        "/v1/calendar",
        "/v1/assets/AAPL",
        f"{SCOPE}/account/configurations",
        f"{SCOPE}/orders",
        f"{SCOPE}/orders/{waiting.broker_order_id}",
        f"{SCOPE}/positions/AAPL",
    } <= paths
    assert not any(p.startswith("/v2/") for p in paths)

    session_fake.disable_overnight_trading = True
    session_fake.clock.advance(3600)
    await executor.maintenance()
    assert executor.overnight_available() is False

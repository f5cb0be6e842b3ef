"""The Trading API executor outside regular hours, against the fake over HTTP.

The fake follows its calendar on a clock the test moves; the executor reads
the same clock. Every call goes over real HTTP, and the bodies the executor
sends are the ones the fake (which alpaca-py's own models accept) validates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from st0x_alpaca import AlpacaTradingConfig, AlpacaTradingExecutor
from st0x_testing.fake_alpaca import NEW_YORK, FakeAlpacaTrading

from st0x_liquidity import (
    Direction,
    ExtendedHoursExecutor,
    FinalBrokerError,
    LimitOrder,
    OrderState,
    RetryableBrokerError,
    Secret,
    Session,
    Symbol,
    SymbolEligibility,
    session_at,
    session_windows,
)

from .conftest import FAST, KEY, SECRET  # type: ignore[import-not-found]

MONDAY = date(2026, 3, 9)
TUESDAY = MONDAY + timedelta(days=1)
AAPL = Symbol("AAPL")


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), NEW_YORK).astimezone(UTC)


def limit(
    cid: str,
    price: str = "190.30",
    *,
    qty: str = "1.5",
    side: Direction = Direction.BUY,
    session: Session = Session.PRE,
) -> LimitOrder:
    return LimitOrder(
        AAPL, side, Decimal(qty), cid, Decimal(price), session, Decimal("190.25"), "pyth"
    )


@pytest.fixture
async def session_fake(fake: FakeAlpacaTrading) -> FakeAlpacaTrading:
    fake.market_open = None
    fake.clock.set(ny(MONDAY, 5))
    fake.set_price("AAPL", "190.25")
    return fake


@pytest.fixture
async def make(session_fake: FakeAlpacaTrading) -> AsyncIterator[Any]:
    made: list[AlpacaTradingExecutor] = []

    async def build(**overrides: Any) -> AlpacaTradingExecutor:
        settings: dict[str, Any] = {
            "api_key": Secret(KEY),
            "api_secret": Secret(SECRET),
            "base_url": session_fake.base_url,
            **FAST,
            **overrides,
        }
        executor = AlpacaTradingExecutor(AlpacaTradingConfig(**settings), now=session_fake.now)
        made.append(executor)
        await executor.start()
        return executor

    yield build
    for executor in made:
        await executor.close()


def asset_reads(fake: FakeAlpacaTrading) -> int:
    return sum(1 for _m, p, _t in fake.requests if p.startswith("/v2/assets/"))


async def test_it_is_an_extended_hours_executor(make: Any) -> None:
    assert isinstance(await make(), ExtendedHoursExecutor)


async def test_trading_days_from_the_calendar(make: Any, session_fake: FakeAlpacaTrading) -> None:
    executor = await make()
    good_friday, half_day = date(2026, 4, 3), date(2026, 11, 27)
    session_fake.holidays.add(good_friday)
    session_fake.half_days[half_day] = time(13, 0)
    days = await executor.trading_days(date(2026, 4, 2), date(2026, 4, 6))
    assert [d.date for d in days] == [date(2026, 4, 2), date(2026, 4, 6)]
    first = days[0]
    assert (first.regular_open, first.regular_close) == (ny(first.date, 9, 30), ny(first.date, 16))
    assert (first.extended_open, first.extended_close) == (ny(first.date, 4), ny(first.date, 20))
    [short] = await executor.trading_days(half_day, half_day)
    assert (short.regular_close, short.extended_close) == (ny(half_day, 13), ny(half_day, 17))

    # Without session_open/session_close: 04:00-20:00, and no after-hours on a half-day.
    session_fake.calendar_session_fields = False
    [plain] = await executor.trading_days(MONDAY, MONDAY)
    assert (plain.extended_open, plain.extended_close) == (ny(MONDAY, 4), ny(MONDAY, 20))
    [short] = await executor.trading_days(half_day, half_day)
    assert short.extended_close == short.regular_close == ny(half_day, 13)

    # The core derives the sessions from them: Monday 05:00 is pre-market, next regular.
    week = await executor.trading_days(MONDAY, MONDAY + timedelta(days=6))
    windows = session_windows(week, overnight=True)
    now, following = session_at(windows, ny(MONDAY, 5), frozenset(Session))
    assert now.session is Session.PRE and following is not None
    assert following.session is Session.REGULAR
    assert (await executor.trading_days(TUESDAY, MONDAY)) == []


async def test_eligibility_per_symbol_cached_until_19_55(
    make: Any, session_fake: FakeAlpacaTrading
) -> None:
    executor = await make(eligibility_max_age=86_400)
    session_fake.set_eligibility("MSFT", fractional_eh=False, overnight=False)
    session_fake.set_eligibility("TSLA", overnight=True, halted=True)
    session_fake.unknown_symbols.add("ZZZZ")
    found = await executor.eligibility([AAPL, Symbol("MSFT"), Symbol("TSLA"), Symbol("ZZZZ")])
    assert found == {
        AAPL: SymbolEligibility(extended=True, overnight=True, overnight_halted=False),
        Symbol("MSFT"): SymbolEligibility(extended=False, overnight=False),
        Symbol("TSLA"): SymbolEligibility(extended=True, overnight=True, overnight_halted=True),
    }
    assert asset_reads(session_fake) == 4

    # Cached: a change at Alpaca is seen after 19:55 New York, not before.
    session_fake.set_eligibility("AAPL", overnight=False)
    session_fake.clock.set(ny(MONDAY, 19, 54))
    assert (await executor.eligibility([AAPL]))[AAPL].overnight is True
    assert asset_reads(session_fake) == 4
    session_fake.clock.set(ny(MONDAY, 19, 56))
    assert (await executor.eligibility([AAPL]))[AAPL].overnight is False
    assert asset_reads(session_fake) == 5

    # A failed refresh keeps the last answer; with nothing cached it is an error.
    session_fake.clock.set(ny(TUESDAY, 19, 56))
    session_fake.inject("500", path_contains="/v2/assets/", times=10)
    assert (await executor.eligibility([AAPL]))[AAPL].extended is True
    with pytest.raises(RetryableBrokerError):
        await executor.eligibility([Symbol("NVDA")])


async def test_eligibility_refreshes_after_max_age_and_bad_replies_are_one_error(
    make: Any, session_fake: FakeAlpacaTrading
) -> None:
    executor = await make(eligibility_max_age=60)
    await executor.eligibility([AAPL])
    session_fake.clock.advance(61)
    await executor.eligibility([AAPL])
    assert asset_reads(session_fake) == 2
    session_fake.inject(
        "raw", path_contains="/v2/assets/NVDA", status=200,
        body=b'{"symbol": "NVDA", "status": "active", "tradable": true, "attributes": "x"}',
    )
    with pytest.raises(RetryableBrokerError, match="attributes must be a list of strings"):
        await executor.eligibility([Symbol("NVDA")])


async def test_overnight_needs_the_opt_in_and_the_account(
    make: Any, session_fake: FakeAlpacaTrading
) -> None:
    plain = await make()
    assert plain.overnight_available() is False
    assert not any("configurations" in p for _m, p, _t in session_fake.requests)
    with pytest.raises(FinalBrokerError, match="overnight"):
        await plain.place_limit_order(limit("night-1", session=Session.OVERNIGHT))

    opted = await make(overnight_trading=True, eligibility_max_age=60)
    assert opted.overnight_available() is True
    session_fake.disable_overnight_trading = True
    await opted.maintenance()  # not due yet
    assert opted.overnight_available() is True
    session_fake.clock.advance(61)
    await opted.maintenance()
    assert opted.overnight_available() is False
    assert session_fake.order_posts == 0


async def test_limit_order_body_fill_and_find(make: Any, session_fake: FakeAlpacaTrading) -> None:
    executor = await make()
    placed = await executor.place_limit_order(limit("eh-buy-1"))
    assert placed.state is OrderState.SUBMITTED and placed.client_order_id == "eh-buy-1"
    assert session_fake.order_bodies[-1] == {
        "symbol": "AAPL",
        "qty": "1.5",
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "limit_price": "190.3",
        "extended_hours": True,
        "client_order_id": "eh-buy-1",
    }
    done = await executor.order_status(placed.broker_order_id)
    assert (done.state, done.filled_quantity, done.average_price) == (
        OrderState.FILLED, Decimal("1.5"), Decimal("190.25")
    )
    found = await executor.find_order("eh-buy-1", limit("eh-buy-1"))
    assert found is not None and found.broker_order_id == placed.broker_order_id
    assert await executor.find_order("eh-never", limit("eh-never")) is None

    # Same client_order_id again (a retry after a crash): the existing order, no new one.
    again = await executor.place_limit_order(limit("eh-buy-1"))
    assert again.broker_order_id == placed.broker_order_id
    assert len(session_fake.orders) == 1

    # A sub-penny price below $1 on the 4-decimal grid; off-grid prices never leave.
    session_fake.set_price("PENY", "0.5")
    cheap = LimitOrder(
        Symbol("PENY"), Direction.BUY, Decimal(10), "eh-cheap", Decimal("0.1234"),
        Session.POST, Decimal("0.12"), "onchain",
    )
    assert (await executor.place_limit_order(cheap)).state is OrderState.SUBMITTED
    posts = session_fake.order_posts
    for bad in ("190.305", "0.12345", "0"):
        with pytest.raises(FinalBrokerError):
            await executor.place_limit_order(limit(f"eh-bad-{bad}", bad))
    assert session_fake.order_posts == posts
    assert session_fake.market_orders_outside_regular() == []


async def test_a_lost_answer_is_resolved_by_client_order_id(
    make: Any, session_fake: FakeAlpacaTrading
) -> None:
    executor = await make()
    session_fake.inject("drop_after", method="POST", path_contains="/v2/orders")
    placed = await executor.place_limit_order(limit("eh-lost-1"))
    assert placed.client_order_id == "eh-lost-1"
    assert len(session_fake.orders) == 1 and session_fake.order_posts == 1


async def test_cancel_is_idempotent_and_reports_the_state(
    make: Any, session_fake: FakeAlpacaTrading
) -> None:
    executor = await make()
    session_fake.set_price("AAPL", "195")  # nothing fills
    live = await executor.place_limit_order(limit("eh-c1"))
    cancelled = await executor.cancel_order(live.broker_order_id)
    assert cancelled.state is OrderState.CANCELLED
    assert (await executor.cancel_order(live.broker_order_id)).state is OrderState.CANCELLED

    session_fake.cancel_pending = True
    pending = await executor.place_limit_order(limit("eh-c2"))
    assert session_fake.cancel_requests == 2
    # The cancel request leaves it pending_cancel; the read after it finds it cancelled
    # (the fake finishes a pending cancel on the next read).
    after = await executor.cancel_order(pending.broker_order_id)
    assert after.state is OrderState.CANCELLED

    # Filled before the cancel landed: 422 at Alpaca, the fill is the answer.
    session_fake.cancel_pending = False
    raced = await executor.place_limit_order(limit("eh-c3", "190.00"))
    session_fake.set_price("AAPL", "189.90")
    filled = await executor.cancel_order(raced.broker_order_id)
    assert (filled.state, filled.filled_quantity) == (OrderState.FILLED, Decimal("1.5"))

    # Partly filled, then cancelled: the filled part is reported with the cancel.
    session_fake.partial_fill = Decimal("0.4")
    partial = await executor.place_limit_order(limit("eh-c4", "190.00", qty="5"))
    cut = await executor.cancel_order(partial.broker_order_id)
    assert (cut.state, cut.filled_quantity) == (OrderState.CANCELLED, Decimal(2))

    with pytest.raises(FinalBrokerError):
        await executor.cancel_order("8d9c2c57-7a36-4c8f-9a75-1f0b2c3d4e5f")
    with pytest.raises(FinalBrokerError):
        await executor.cancel_order("not-an-id")


@pytest.mark.parametrize(
    ("status", "filled", "state"),
    [
        ("expired", "0", OrderState.CANCELLED),
        ("expired", "0.5", OrderState.CANCELLED),
        ("done_for_day", "0.5", OrderState.CANCELLED),
        ("done_for_day", "1.5", OrderState.FILLED),
        ("canceled", "0.5", OrderState.CANCELLED),
        ("replaced", "0", OrderState.CANCELLED),
        ("pending_cancel", "0.5", OrderState.PARTIALLY_FILLED),
        ("accepted", "0", OrderState.SUBMITTED),
    ],
)
async def test_end_of_day_statuses_map_to_order_states(
    make: Any, session_fake: FakeAlpacaTrading, status: str, filled: str, state: OrderState
) -> None:
    executor = await make()
    session_fake.set_price("AAPL", "195")
    order = await executor.place_limit_order(limit(f"eh-s-{status}-{filled}"))
    held = session_fake.orders[order.broker_order_id]
    held.status, held.filled_qty = status, Decimal(filled)
    held.filled_notional = Decimal(filled) * Decimal("190.2")
    update = await executor.order_status(order.broker_order_id)
    assert (update.state, update.filled_quantity) == (state, Decimal(filled))


async def test_day_orders_expire_at_20_00(make: Any, session_fake: FakeAlpacaTrading) -> None:
    executor = await make()
    session_fake.set_price("AAPL", "195")
    session_fake.clock.set(ny(MONDAY, 17))
    order = await executor.place_limit_order(limit("eh-exp", session=Session.POST))
    session_fake.clock.set(ny(MONDAY, 19, 59))
    assert (await executor.order_status(order.broker_order_id)).state is OrderState.SUBMITTED
    session_fake.clock.set(ny(MONDAY, 20))
    ended = await executor.order_status(order.broker_order_id)
    assert ended.state is OrderState.CANCELLED and ended.reason is not None
    assert "expired" in ended.reason


async def test_position_mark(make: Any, session_fake: FakeAlpacaTrading) -> None:
    executor = await make()
    assert await executor.position_mark(AAPL) is None
    session_fake.positions["AAPL"] = Decimal(3)
    session_fake.set_price("AAPL", "191.07")
    assert await executor.position_mark(AAPL) == Decimal("191.07")


async def test_a_cancel_whose_answer_is_lost_is_sent_again_harmlessly(
    make: Any, session_fake: FakeAlpacaTrading
) -> None:
    executor = await make()
    session_fake.set_price("AAPL", "195")
    order = await executor.place_limit_order(limit("eh-drop"))
    session_fake.inject("drop_after", method="DELETE")
    cancelled = await executor.cancel_order(order.broker_order_id)
    assert cancelled.state is OrderState.CANCELLED
    assert session_fake.cancel_requests == 2  # the second DELETE got 422: already canceled
    session_fake.inject("500", method="DELETE", times=10)
    with pytest.raises(RetryableBrokerError):
        await executor.cancel_order(order.broker_order_id)


async def test_an_unreadable_configuration_is_asked_again_within_a_minute(
    make: Any, session_fake: FakeAlpacaTrading
) -> None:
    session_fake.inject("500", path_contains="/account/configurations", times=20)
    executor = await make(overnight_trading=True, eligibility_max_age=3600)
    assert executor.overnight_available() is False
    session_fake.faults.clear()
    await executor.maintenance()
    assert executor.overnight_available() is False  # not due yet
    session_fake.clock.advance(61)
    await executor.maintenance()
    assert executor.overnight_available() is True

"""The Schwab executor outside regular hours, against the fake over HTTP.

The test clock drives both the executor and the fake (the fake follows it), so
tokens, sessions and expiry all move together.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from st0x_schwab.executor import SchwabExecutor
from st0x_testing.fake_schwab import EASTERN, FakeSchwab, Fault, TestClock

from st0x_liquidity import (
    AmbiguousBrokerError,
    Direction,
    ExtendedHoursExecutor,
    FinalBrokerError,
    LimitOrder,
    OrderState,
    Session,
    Symbol,
    SymbolEligibility,
    session_at,
    session_windows,
)

WEDNESDAY = date(2026, 3, 4)
AAPL = Symbol("AAPL")


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), EASTERN).astimezone(UTC)


def move(clock: TestClock, moment: datetime) -> None:
    clock.advance(seconds=(moment - clock.now()).total_seconds())


def limit(
    cid: str,
    price: str = "190.30",
    *,
    qty: str = "3",
    side: Direction = Direction.BUY,
    session: Session = Session.PRE,
) -> LimitOrder:
    return LimitOrder(
        AAPL, side, Decimal(qty), cid, Decimal(price), session, Decimal("190.25"), "onchain"
    )


@pytest.fixture
def priced(fake: FakeSchwab) -> FakeSchwab:
    fake.set_price("AAPL", "190.25")
    return fake


async def test_sessions_calendar_and_eligibility(
    authorized: SchwabExecutor, fake: FakeSchwab
) -> None:
    assert isinstance(authorized, ExtendedHoursExecutor)
    assert authorized.overnight_available() is False
    assert await authorized.eligibility([AAPL, Symbol("MSFT")]) == {
        AAPL: SymbolEligibility(extended=True, overnight=False),
        Symbol("MSFT"): SymbolEligibility(extended=True, overnight=False),
    }
    friday, half_day = date(2026, 3, 6), date(2026, 3, 9)
    fake.holidays.add(friday)
    fake.half_days[half_day] = time(13, 0)
    days = await authorized.trading_days(WEDNESDAY, date(2026, 3, 10))
    assert [d.date for d in days] == [WEDNESDAY, date(2026, 3, 5), half_day, date(2026, 3, 10)]
    first = days[0]
    assert (first.extended_open, first.regular_open) == (ny(WEDNESDAY, 7), ny(WEDNESDAY, 9, 30))
    assert (first.regular_close, first.extended_close) == (ny(WEDNESDAY, 16), ny(WEDNESDAY, 20))
    short = days[2]
    assert (short.regular_close, short.extended_close) == (ny(half_day, 13), ny(half_day, 17))
    asked = len(fake.requests)
    await authorized.trading_days(WEDNESDAY, date(2026, 3, 10))
    assert len(fake.requests) == asked  # cached for an hour
    month = await authorized.trading_days(WEDNESDAY, WEDNESDAY + timedelta(days=60))
    assert month[-1].date <= WEDNESDAY + timedelta(days=30)  # a month at most


async def test_limit_orders_by_session(
    authorized: SchwabExecutor, priced: FakeSchwab, clock: TestClock
) -> None:
    fake = priced
    move(clock, ny(WEDNESDAY, 8))
    pre = await authorized.place_limit_order(limit("sch-pre"))
    assert pre.state is OrderState.SUBMITTED and pre.client_order_id == "sch-pre"
    held = fake.orders[int(pre.broker_order_id)]
    assert (held.order_type, held.session, held.price) == ("LIMIT", "AM", Decimal("190.30"))
    done = await authorized.order_status(pre.broker_order_id)
    assert (done.state, done.filled_quantity, done.average_price) == (
        OrderState.FILLED, Decimal(3), Decimal("190.25")
    )

    move(clock, ny(WEDNESDAY, 11))
    regular = await authorized.place_limit_order(limit("sch-reg", session=Session.REGULAR))
    assert fake.orders[int(regular.broker_order_id)].session == "SEAMLESS"
    move(clock, ny(WEDNESDAY, 17))
    post = await authorized.place_limit_order(
        limit("sch-post", "195.00", side=Direction.SELL, session=Session.POST)
    )
    assert fake.orders[int(post.broker_order_id)].session == "PM"
    assert (await authorized.order_status(post.broker_order_id)).state is OrderState.SUBMITTED
    # A day order ends with after-hours at 20:00.
    move(clock, ny(WEDNESDAY, 20))
    ended = await authorized.order_status(post.broker_order_id)
    assert ended.state is OrderState.CANCELLED and ended.reason == "EXPIRED"

    # Nothing is sent for overnight, fractions or off-grid prices.
    posts = sum(1 for m, _p in fake.requests if m == "POST")
    for bad in (
        limit("sch-night", session=Session.OVERNIGHT),
        limit("sch-frac", qty="1.5"),
        limit("sch-grid", "190.305"),
        limit("sch-closed", session=Session.CLOSED),
    ):
        with pytest.raises(FinalBrokerError):
            await authorized.place_limit_order(bad)
    assert sum(1 for m, _p in fake.requests if m == "POST") == posts
    assert not any(o.order_type == "MARKET" for o in fake.orders.values())


async def test_cancel_and_partial_fills(
    authorized: SchwabExecutor, priced: FakeSchwab, clock: TestClock
) -> None:
    fake = priced
    move(clock, ny(WEDNESDAY, 17))
    live = await authorized.place_limit_order(limit("sch-c1", "189.00", session=Session.POST))
    assert (await authorized.cancel_order(live.broker_order_id)).state is OrderState.CANCELLED
    again = await authorized.cancel_order(live.broker_order_id)  # Schwab: 400, not cancelable
    assert again.state is OrderState.CANCELLED

    fake.partial_fill = Decimal("0.34")
    partial = await authorized.place_limit_order(
        limit("sch-c2", "190.50", qty="6", session=Session.POST)
    )
    first = await authorized.order_status(partial.broker_order_id)
    assert (first.state, first.filled_quantity) == (OrderState.PARTIALLY_FILLED, Decimal(2))
    fake.set_price("AAPL", "191")
    fake.cancel_pending = True
    cut = await authorized.cancel_order(partial.broker_order_id)
    assert (cut.state, cut.filled_quantity) == (OrderState.CANCELLED, Decimal(2))

    fake.partial_fill, fake.cancel_pending = Decimal(1), False
    raced = await authorized.place_limit_order(limit("sch-c3", "190.00", session=Session.POST))
    fake.set_price("AAPL", "189.50")
    filled = await authorized.cancel_order(raced.broker_order_id)
    assert (filled.state, filled.average_price) == (OrderState.FILLED, Decimal("189.5"))

    with pytest.raises(FinalBrokerError):
        await authorized.cancel_order("999")
    with pytest.raises(FinalBrokerError):
        await authorized.cancel_order("abc")


async def test_a_lost_answer_is_found_again(
    authorized: SchwabExecutor, priced: FakeSchwab, clock: TestClock
) -> None:
    move(clock, ny(WEDNESDAY, 8))
    priced.inject("place_order", Fault("disconnect_after"))
    order = limit("sch-lost", "189.00")
    with pytest.raises(AmbiguousBrokerError):
        await authorized.place_limit_order(order)
    found = await authorized.find_order("sch-lost", order)
    assert found is not None and found.state is OrderState.SUBMITTED
    assert found.broker_order_id == str(next(iter(priced.orders)))
    assert await authorized.find_order("sch-never", limit("sch-never")) is None


async def test_position_mark(authorized: SchwabExecutor, priced: FakeSchwab) -> None:
    assert await authorized.position_mark(AAPL) is None
    priced.set_position("AAPL", 4)
    priced.set_price("AAPL", "191.5")
    assert await authorized.position_mark(AAPL) == Decimal("191.5")


async def test_a_cancel_is_retried_like_a_read(
    authorized: SchwabExecutor, priced: FakeSchwab, clock: TestClock
) -> None:
    move(clock, ny(WEDNESDAY, 17))
    live = await authorized.place_limit_order(limit("sch-r1", "189.00", session=Session.POST))
    priced.inject("cancel_order", Fault("status", status=503))
    assert (await authorized.cancel_order(live.broker_order_id)).state is OrderState.CANCELLED
    deletes = [p for m, p in priced.requests if m == "DELETE"]
    assert len(deletes) == 2


async def test_fake_and_core_sessions_agree(authorized: SchwabExecutor, fake: FakeSchwab) -> None:
    """The windows the engine derives from ``trading_days`` match the fake's sessions
    (Schwab: no overnight) at seeded random moments and at every boundary."""
    fake.holidays.add(date(2026, 3, 6))
    fake.half_days[date(2026, 3, 9)] = time(13, 0)
    days = await authorized.trading_days(WEDNESDAY, date(2026, 3, 17))
    windows = session_windows(days, overnight=False)
    enabled = frozenset({Session.PRE, Session.REGULAR, Session.POST})
    first, last = ny(WEDNESDAY, 0), ny(date(2026, 3, 17), 0)
    rng = random.Random(7)
    span = (last - first).total_seconds()
    moments = [first + timedelta(seconds=rng.uniform(0, span)) for _ in range(2000)]
    moments += [w.start + timedelta(seconds=d) for w in windows for d in (-1, 0, 1)]
    for moment in moments:
        if not first <= moment < last:
            continue
        core = session_at(windows, moment, enabled)[0].session.value
        name = fake.calendar.session_at(moment)[0]
        assert core == ("closed" if name == "overnight" else name), moment

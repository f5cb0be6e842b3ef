"""The dry-run broker with sessions follows Alpaca's documented rules (builtin/dry_run_sessions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from st0x_liquidity.builtin.dry_run_executor import DryRunConfig
from st0x_liquidity.builtin.dry_run_sessions import DryRunSessionsExecutor
from st0x_liquidity.domain.fills import Direction
from st0x_liquidity.domain.orders import LimitOrder, MarketOrder, OrderState
from st0x_liquidity.domain.sessions import NEW_YORK, Session
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.errors import FinalBrokerError


def ny(d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, d, hh, mm, tzinfo=NEW_YORK).astimezone(UTC)


def limit(cid: str, price: str, side: Direction = Direction.SELL, qty: str = "2") -> LimitOrder:
    return LimitOrder(
        Symbol("AAPL"),
        side,
        Decimal(qty),
        cid,
        Decimal(price),
        Session.POST,
        Decimal(100),
        "onchain",
    )


async def broker(tmp_path: Path, start: datetime, **config: object) -> DryRunSessionsExecutor:
    cfg = DryRunConfig(sessions=True, clock_start=start.isoformat(), clock_speed=0, **config)  # type: ignore[arg-type]
    ex = DryRunSessionsExecutor(cfg, tmp_path / "ledger.sqlite")
    await ex.start()
    return ex


async def test_market_orders_only_in_regular_hours(tmp_path: Path) -> None:
    ex = await broker(tmp_path, ny(3, 17))
    order = MarketOrder(Symbol("AAPL"), Direction.SELL, Decimal(1), "m-1", Decimal(100))
    with pytest.raises(FinalBrokerError, match="regular hours only"):
        await ex.place_market_order(order)
    assert not (await ex.market_clock()).is_open
    ex.clock.set(ny(4, 10))
    assert (await ex.market_clock()).is_open
    assert (await ex.place_market_order(order)).state is OrderState.FILLED
    await ex.close()


async def test_sub_penny_limits_are_refused(tmp_path: Path) -> None:
    ex = await broker(tmp_path, ny(3, 17))
    with pytest.raises(FinalBrokerError, match="sub-penny increment"):
        await ex.place_limit_order(limit("l-1", "99.505"))
    assert (await ex.place_limit_order(limit("l-2", "0.9999"))).state is OrderState.FILLED
    await ex.close()


async def test_limits_fill_by_price_partly_and_end_at_the_after_hours_close(tmp_path: Path) -> None:
    ex = await broker(tmp_path, ny(3, 19, 50), prices={"AAPL": Decimal(99)})
    resting = await ex.place_limit_order(limit("l-1", "99.5"))
    assert resting.state is OrderState.SUBMITTED  # a sell at 99.5, the market at 99
    ex.set_price("AAPL", Decimal("99.7"))
    filled = await ex.order_status(resting.broker_order_id)
    assert (filled.state, filled.average_price) == (OrderState.FILLED, Decimal("99.7"))
    ex.set_price("AAPL", Decimal(99))
    other = await ex.place_limit_order(limit("l-2", "99.5"))
    ex.clock.set(ny(3, 20, 0))  # the day order ends at 20:00
    expired = await ex.order_status(other.broker_order_id)
    assert expired.state is OrderState.CANCELLED and "expired" in (expired.reason or "")
    again = await ex.cancel_order(other.broker_order_id)  # idempotent: its final state
    assert again.state is OrderState.CANCELLED
    await ex.close()


async def test_partial_fills_and_cancel(tmp_path: Path) -> None:
    ex = await broker(tmp_path, ny(3, 17), limit_partial_fraction=Decimal("0.25"))
    placed = await ex.place_limit_order(limit("l-1", "99.5", qty="4"))
    assert (placed.state, placed.filled_quantity) == (OrderState.PARTIALLY_FILLED, Decimal(1))
    cancelled = await ex.cancel_order(placed.broker_order_id)
    assert (cancelled.state, cancelled.filled_quantity) == (OrderState.CANCELLED, Decimal(1))
    await ex.close()


async def test_eligibility_and_overnight(tmp_path: Path) -> None:
    ex = await broker(tmp_path, ny(3, 22), eligible=["TSLA"], overnight_eligible=[])
    with pytest.raises(FinalBrokerError, match="not eligible"):
        await ex.place_limit_order(limit("l-1", "99.5"))
    [eligibility] = (await ex.eligibility([Symbol("AAPL")])).values()
    assert (eligibility.extended, eligibility.overnight) == (False, False)
    (tmp_path / "second").mkdir()
    ex2 = await broker(tmp_path / "second", ny(3, 22))
    placed = await ex2.place_limit_order(limit("o-1", "99.5"))  # overnight, belongs to Wednesday
    [row] = [o for o in await ex2.ledger.orders() if o.client_order_id == "o-1"]
    assert placed.state is OrderState.FILLED and row.done_at == ny(4, 20)
    await ex.close()
    await ex2.close()

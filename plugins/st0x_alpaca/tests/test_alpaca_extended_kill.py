"""SIGKILL at each reprice step with the real Alpaca executor, over HTTP, then a restart.

The bot runs as a child process (``python -m st0x_liquidity run``) on the real
clock; the fake runs in the test's event loop with today's calendar overridden
so that the current time is pre-market (00:00 until 23:58 New York), so the
engine hedges with extended-hours limit orders. ``ST0X_TEST_KILL_AT`` (the
core's test-only kill switch) kills the process at one step of a reprice:
the durable cancel request written but Alpaca not asked; Alpaca's cancel
confirmed but not booked; booked but the next order not decided; a partial
fill booked. After a restart: no ``client_order_id`` reached Alpaca twice,
every order at Alpaca matches our record (state and filled quantity), nothing
is in flight, every share of the fills is hedged, and no market order was
ever sent outside regular hours.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from st0x_testing import alpaca_e2e as e2e
from st0x_testing.alpaca_e2e import fill_line, finish
from st0x_testing.fake_alpaca import NEW_YORK, FakeAlpacaTrading

from .conftest import KEY, SECRET  # type: ignore[import-not-found]

FILLS = [fill_line(1, "tAAPL", "BUY", "10", "100"), fill_line(2, "tAAPL", "BUY", "2.5", "100")]
BOUGHT = Decimal("12.5")
DONE = {"filled": "filled", "canceled": "cancelled", "expired": "cancelled"}


def write_config(tmp: Path, base_url: str) -> Path:
    config = tmp / "config.toml"
    config.write_text(
        f"""
database_url = "st0x.db"
log_level = "info"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
type = "alpaca-trading-api"
base_url = "{base_url}"
timeout = 5.0
backoff_initial = 0.05
backoff_max = 0.2
min_notional = "1"
[hedging]
poll_interval = 0.02
poll_jitter = 0.0
clock_recheck = 0.1
[engine]
shutdown_timeout = 2.0
drain_timeout = 60.0
[extended_hours]
reprice_timeout = 0.6
close_flatten_reprice_timeout = 0.3
check_interval = 0.05
[extended_hours.symbols.AAPL]
"""
    )
    return config


def pre_market_all_day(fake: FakeAlpacaTrading) -> None:
    now = datetime.now(UTC).astimezone(NEW_YORK)
    if now.time() >= time(23, 50):
        pytest.skip("too close to midnight in New York to give today a pre-market session")
    fake.calendar.override(
        now.date(), session_open=time(0, 0), open=time(23, 58), close=time(23, 59),
        session_close=time(23, 59),
    )


def rows(tmp: Path, query: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(tmp / "st0x.db")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "step", ["cancel_requested", "cancel_confirmed", "cancel_booked", "partial_booked"]
)
async def test_sigkill_at_each_reprice_step(tmp_path: Path, step: str) -> None:
    (tmp_path / "fills.jsonl").write_text("\n".join(FILLS) + "\n")
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET, market_open=None) as fake:
        assert isinstance(fake, FakeAlpacaTrading)
        pre_market_all_day(fake)
        # A sell limit at 99.5 rests with the market at 90; at 100 it fills (partly).
        fake.set_price("AAPL", "100" if step == "partial_booked" else "90")
        fake.partial_fill = Decimal("0.4")
        config = write_config(tmp_path, fake.base_url)
        secrets = {"ST0X_BROKER_API_KEY": KEY, "ST0X_BROKER_API_SECRET": SECRET}
        killed = await e2e.start_cli(tmp_path, config, ST0X_TEST_KILL_AT=step, **secrets)
        _out, err = await killed.communicate()
        assert killed.returncode == -9, err.decode(errors="replace")[-3000:]

        hedges = rows(
            tmp_path,
            "SELECT client_order_id, state, cancel_requested_at FROM hedge_orders "
            "ORDER BY created_at",
        )
        if step == "cancel_booked":
            # Booked; the next intent may already be recorded (not sent): take the
            # last booked order.
            hedges = [h for h in hedges if h[1] == "cancelled"] or hedges
        cid, state, requested = hedges[-1]
        at_alpaca = fake.order_by_client_id(str(cid))
        assert at_alpaca is not None, hedges
        if step == "cancel_requested":
            assert state == "submitted" and requested is not None
            assert at_alpaca.status in ("new", "accepted")  # Alpaca was not asked
        elif step == "cancel_confirmed":
            assert state == "submitted" and at_alpaca.status == "canceled"
        elif step == "cancel_booked":
            assert state == "cancelled" and at_alpaca.status == "canceled"
            assert all(
                h[1] != "submitted"
                for h in rows(tmp_path, "SELECT client_order_id, state FROM hedge_orders")
            )
        else:
            assert state == "partially_filled" and at_alpaca.status == "partially_filled"

        # Restart: the market crosses every limit now.
        fake.set_price("AAPL", "100")
        fake.partial_fill = Decimal(1)
        restarted = await e2e.start_cli(tmp_path, config, **secrets)
        await finish(restarted)

        ours = {
            str(c): (str(s), Decimal(str(f)))
            for c, s, f in rows(
                tmp_path, "SELECT client_order_id, state, filled_quantity FROM hedge_orders"
            )
        }
        cids = [o.client_order_id for o in fake.orders.values()]
        assert len(cids) == len(set(cids)), "a client_order_id reached Alpaca twice"
        assert set(cids) <= set(ours)
        for order in fake.orders.values():
            assert order.status in DONE, (order.client_order_id, order.status)
            assert ours[order.client_order_id] == (DONE[order.status], order.filled_qty)
        assert all(s in ("filled", "cancelled", "failed") for s, _f in ours.values())
        sold = sum((o.filled_qty for o in fake.orders.values()), Decimal(0))
        assert sold == BOUGHT and fake.positions["AAPL"] == -BOUGHT
        [(net,)] = rows(tmp_path, "SELECT net FROM positions WHERE symbol = 'AAPL'")
        assert Decimal(str(net)) == 0
        assert fake.market_orders_outside_regular() == []
        assert all(o.order_type == "limit" and o.extended_hours for o in fake.orders.values())
        assert all(o.expires_at is not None for o in fake.orders.values())
        assert min(o.expires_at for o in fake.orders.values() if o.expires_at) > (
            datetime.now(UTC) - timedelta(minutes=5)
        )

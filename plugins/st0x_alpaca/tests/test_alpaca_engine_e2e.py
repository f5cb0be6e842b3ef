"""The whole engine through the real CLI: replay source → accumulator → Alpaca plugin → fake.

The fake runs in the test's event loop; ``python -m st0x_liquidity run`` runs as
a child process talking HTTP to it, with the Alpaca secrets coming from the
environment. One scenario SIGKILLs the process after the order POST reached
Alpaca but before its answer did; after a restart exactly one order exists.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from st0x_testing import alpaca_e2e as e2e
from st0x_testing.alpaca_e2e import fill_line, finish, hedge_rows, wait_for_one_order
from st0x_testing.fake_alpaca import FILL_AT_ONCE, FakeAlpacaTrading

from .conftest import KEY, SECRET  # type: ignore[import-not-found]


def write_config(tmp: Path, base_url: str, *, timeout: float = 5.0, follow: bool = False) -> Path:
    config = tmp / "config.toml"
    config.write_text(
        f"""
database_url = "st0x.db"
log_level = "info"
[source]
type = "replay"
path = "fills.jsonl"
follow = {str(follow).lower()}
[broker]
type = "alpaca-trading-api"
base_url = "{base_url}"
timeout = {timeout}
backoff_initial = 0.05
backoff_max = 0.2
[hedging]
poll_interval = 0.05
poll_jitter = 0.02
failure_backoff = 0.05
failure_backoff_max = 0.2
retry_backoff_max = 0.5
clock_recheck = 0.5
[engine]
shutdown_timeout = 2.0
drain_timeout = 60.0
"""
    )
    return config


async def start_cli(tmp: Path, config: Path) -> asyncio.subprocess.Process:
    return await e2e.start_cli(tmp, config, ST0X_BROKER_API_KEY=KEY, ST0X_BROKER_API_SECRET=SECRET)


@pytest.mark.slow
async def test_engine_hedges_through_alpaca_exactly_once(tmp_path: Path) -> None:
    lines = []
    rng_prices = {"AAPL": "187.53", "TSLA": "241.43", "NVDA": "121.59"}
    n = 0
    for round_ in range(6):
        for symbol, price in rng_prices.items():
            n += 1
            direction = "BUY" if (n + round_) % 3 else "SELL"
            lines.append(fill_line(n, f"t{symbol}", direction, f"0.{n + 10}3", price))
    (tmp_path / "fills.jsonl").write_text("\n".join(lines) + "\n")

    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET) as fake:
        fake.prices.update({k: Decimal(v) for k, v in rng_prices.items()})
        fake.inject("429", method="POST", retry_after="0.2")
        fake.inject("500", path_contains="/v2/orders/", times=2)
        fake.inject("drop_after", method="POST")
        proc = await start_cli(tmp_path, write_config(tmp_path, fake.base_url))
        log_text = await finish(proc)

    assert SECRET not in log_text and KEY not in log_text
    rows = hedge_rows(tmp_path)
    assert rows, "the engine placed no hedge"
    cids = [o.client_order_id for o in fake.orders.values()]
    assert len(cids) == len(set(cids)), "a client_order_id was placed twice"
    assert {r[0] for r in rows} == set(cids)
    for cid, _symbol, state, broker_id, filled in rows:
        order = fake.order_by_client_id(cid)
        assert order is not None and order.id == broker_id
        assert state == "filled" and Decimal(filled) == order.filled_qty == order.qty
    # The broker's positions are exactly what the engine recorded as hedged.
    recorded: dict[str, Decimal] = defaultdict(Decimal)
    for cid, symbol, _state, _broker_id, filled in rows:
        order = fake.order_by_client_id(cid)
        assert order is not None
        recorded[symbol] += Decimal(filled) * (1 if order.side == "buy" else -1)
    assert {s: q for s, q in fake.positions.items() if q} == {
        s: q for s, q in recorded.items() if q
    }


@pytest.mark.slow
async def test_sigkill_between_order_post_and_answer_leaves_one_order(tmp_path: Path) -> None:
    (tmp_path / "fills.jsonl").write_text(fill_line(1, "tAAPL", "BUY", "3.5", "187.53") + "\n")
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET) as fake:
        fake.default_script = FILL_AT_ONCE
        # The order is created, then its answer is held back until the process dies.
        fake.inject("slow_after", method="POST", delay=60.0)
        config = write_config(tmp_path, fake.base_url, timeout=30.0)
        proc = await start_cli(tmp_path, config)
        await wait_for_one_order(proc, fake)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert hedge_rows(tmp_path)[0][2] == "pending"  # the intent was durable, no answer

        fake.faults.clear()
        restarted = await start_cli(tmp_path, config)
        await finish(restarted)

    assert len(fake.orders) == 1
    assert fake.order_posts == 1, "recovery must look the order up, not post it again"
    ((cid, symbol, state, broker_id, filled),) = hedge_rows(tmp_path)
    order = fake.order_by_client_id(cid)
    assert order is not None and order.id == broker_id
    assert (symbol, state, Decimal(filled)) == ("AAPL", "filled", Decimal("3.5"))
    assert order.side == "sell" and fake.positions["AAPL"] == Decimal("-3.5")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_second_signal_exits_at_once_then_restart_finds_the_one_order(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """The first signal waits for the in-flight order POST; a second exits at once
    (128 + signal), and the restart looks the order up instead of posting again."""
    (tmp_path / "fills.jsonl").write_text(fill_line(1, "tAAPL", "BUY", "3.5", "187.53") + "\n")
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET) as fake:
        fake.default_script = FILL_AT_ONCE
        fake.inject("slow_after", method="POST", delay=120.0)  # the answer hangs
        config = write_config(tmp_path, fake.base_url, timeout=300.0, follow=True)
        text = config.read_text().replace("shutdown_timeout = 2.0", "shutdown_timeout = 300.0")
        config.write_text(text)
        proc = await start_cli(tmp_path, config)
        await wait_for_one_order(proc, fake)
        proc.send_signal(sig)
        await asyncio.sleep(0.5)
        assert proc.returncode is None, "the first signal must wait for the in-flight POST"
        proc.send_signal(sig)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 128 + int(sig), err.decode(errors="replace")[-2000:]
        assert b"exiting now without waiting" in err

        fake.faults.clear()
        restarted = await start_cli(tmp_path, write_config(tmp_path, fake.base_url))
        await finish(restarted)

    assert fake.order_posts == 1, "recovery must look the order up, not post it again"
    ((cid, symbol, state, _broker_id, filled),) = hedge_rows(tmp_path)
    assert (symbol, state, Decimal(filled)) == ("AAPL", "filled", Decimal("3.5"))
    assert fake.order_by_client_id(cid) is not None


def failed_hedges(tmp: Path) -> list[tuple[str, str, str | None]]:
    db = sqlite3.connect(tmp / "st0x.db", timeout=10)
    try:
        return db.execute(
            "SELECT client_order_id, symbol, reason FROM hedge_orders WHERE state = 'failed'"
        ).fetchall()
    except sqlite3.OperationalError:  # the engine has not created its tables yet
        return []
    finally:
        db.close()


@pytest.mark.slow
async def test_alpaca_rejection_reaches_the_hedge_orders_state(tmp_path: Path) -> None:
    """A 4xx (here 422 "not fractionable") is final: no retry of that POST, no order at
    Alpaca, and Alpaca's code and message are what the hedge order records as its reason."""
    (tmp_path / "fills.jsonl").write_text(fill_line(1, "tAAPL", "BUY", "0.5", "187.53") + "\n")
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET) as fake:
        fake.non_fractionable.add("AAPL")
        proc = await start_cli(tmp_path, write_config(tmp_path, fake.base_url))
        try:
            deadline = time.monotonic() + 60
            while not failed_hedges(tmp_path) and time.monotonic() < deadline:
                assert proc.returncode is None
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGINT)  # the exposure stays; an operator looks at it
            await finish(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert not fake.orders
        posts = fake.order_posts

    failed = failed_hedges(tmp_path)
    assert failed, "no failed hedge order was recorded"
    for _cid, symbol, reason in failed:
        assert symbol == "AAPL" and reason is not None
        assert "HTTP 422" in reason and "40010001" in reason
        assert "requested asset AAPL is not fractionable" in reason
    assert posts == len({cid for cid, _, _ in failed}), "a refused order POST was sent again"


def recorded_fills(tmp: Path) -> int:
    db = sqlite3.connect(tmp / "st0x.db", timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM onchain_trades").fetchone()[0])
    except sqlite3.OperationalError:  # the engine has not created its tables yet
        return 0
    finally:
        db.close()


@pytest.mark.slow
async def test_market_closed_fills_wait_and_are_hedged_once_at_the_open(tmp_path: Path) -> None:
    lines = [
        fill_line(1, "tAAPL", "BUY", "0.5", "187.53"),
        fill_line(2, "tTSLA", "SELL", "1.25", "241.43"),
        fill_line(3, "tAAPL", "BUY", "0.25", "187.6"),
    ]
    (tmp_path / "fills.jsonl").write_text("\n".join(lines) + "\n")
    async with FakeAlpacaTrading(key_id=KEY, secret_key=SECRET) as fake:
        fake.default_script = FILL_AT_ONCE
        fake.market_open = False
        # follow: the source stays open like a live one, so the bot runs until stopped
        proc = await start_cli(tmp_path, write_config(tmp_path, fake.base_url, follow=True))
        try:
            deadline = time.monotonic() + 60
            while recorded_fills(tmp_path) < 3 and time.monotonic() < deadline:
                assert proc.returncode is None
                await asyncio.sleep(0.05)
            assert recorded_fills(tmp_path) == 3

            def clock_reads() -> int:
                return sum(1 for _m, path, _t in fake.requests if path.startswith("/v2/clock"))

            seen = clock_reads()
            while clock_reads() < seen + 2 and time.monotonic() < deadline:
                assert proc.returncode is None
                await asyncio.sleep(0.05)
            assert clock_reads() >= seen + 2, "the engine stopped asking the clock"
            assert fake.order_posts == 0, "a hedge was sent while the market was closed"

            fake.market_open = True
            want = {"AAPL": Decimal("-0.75"), "TSLA": Decimal("1.25")}
            while fake.positions != want and time.monotonic() < deadline + 60:
                assert proc.returncode is None
                await asyncio.sleep(0.05)
            while len(hedge_rows(tmp_path)) < 2 or any(
                r[2] != "filled" for r in hedge_rows(tmp_path)
            ):
                assert proc.returncode is None and time.monotonic() < deadline + 60
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            await finish(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    rows = hedge_rows(tmp_path)
    assert len(fake.orders) == fake.order_posts == len(rows) == len({r[0] for r in rows})
    assert all(state == "filled" for _cid, _s, state, _b, _f in rows)
    # one netted hedge per symbol, opposite to the maker's direction
    assert sorted((r[1], Decimal(r[4])) for r in rows) == [
        ("AAPL", Decimal("0.75")),
        ("TSLA", Decimal("1.25")),
    ]
    assert fake.positions == {"AAPL": Decimal("-0.75"), "TSLA": Decimal("1.25")}

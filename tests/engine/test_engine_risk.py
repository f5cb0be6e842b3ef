"""Risk limits and trading states in the real engine over a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config, start_engine, stop, wait_for

from st0x_liquidity.domain.orders import OrderRules
from st0x_liquidity.store.trading_state_log import TradingStateLog


async def hedges(store) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    return [
        tuple(r)
        for r in await store.fetch(
            "SELECT symbol, side, quantity, state FROM hedge_orders ORDER BY created_at"
        )
    ]


async def state_events(store) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    rows = await store.fetch(
        "SELECT aggregate_id, payload FROM events WHERE aggregate_type = 'TradingState' "
        "ORDER BY rowid"
    )
    return [
        (agg, json.loads(p)["state"], json.loads(p)["actor"], json.loads(p)["reason"])
        for agg, p in rows
    ]


async def test_a_hedge_above_the_default_limit_is_blocked_then_released_by_a_new_limit(
    tmp_path: Path,
) -> None:
    executor = ScriptedExecutor(OrderRules.fractional_shares(9, Decimal(2)))
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    # The replay line that once produced a hedge of 1e18 shares.
    source.push(fill(1, "tAAPL", "BUY", "999999999999999999", "150"))
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    blocked = engine.status.blocked["AAPL"]
    assert blocked["limit"] == "max_order_quantity"
    assert blocked["side"] == "SELL" and blocked["quantity"] == "999999999999999999"
    assert "above max_order_quantity 10000" in blocked["reason"]
    assert executor.place_calls == {}
    assert await hedges(store) == []
    [(net, open_, pending)] = await store.fetch(
        "SELECT net, open_quantity, pending_hedge FROM positions"
    )
    assert (net, open_, pending) == ("999999999999999999", "999999999999999999", None)
    # More fills re-decide; still blocked, nothing reserved, nothing lost.
    source.push(fill(2, "tAAPL", "SELL", "999999999999990000", "150"))
    await wait_for(lambda: engine.status.fills_ingested == 2)
    await wait_for(lambda: engine.status.blocked.get("AAPL", {}).get("quantity") == "9999")
    # 9999 shares at $150 = $1,499,850: above the order notional limit.
    assert engine.status.blocked["AAPL"]["limit"] == "max_order_notional"
    await stop(engine, task, store)

    # Lifting the limit (a restart with other [risk] values) releases the hedge.
    config = make_config(
        tmp_path,
        risk={
            "symbols": {"AAPL": {"max_order_notional": "2000000", "max_net_exposure": "2000000"}}
        },
    )
    engine, store, task = await start_engine(config, executor, QueueSource())
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert await hedges(store) == [("AAPL", "SELL", "9999", "filled")]
    assert engine.status.blocked == {}
    await stop(engine, task, store)


async def test_halted_blocks_and_active_releases_the_hedge(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    await engine.set_trading_state("*", "halted", "maintenance", "test")
    source.push(fill(1, "tAAPL", "SELL", "2", "100"))
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    assert engine.status.blocked["AAPL"]["limit"] == "state"
    assert engine.status.blocked["AAPL"]["reason"] == "trading state is halted (maintenance)"
    assert await hedges(store) == []
    await engine.set_trading_state("AAPL", "active", "checked", "test")
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert engine.status.blocked == {}
    assert await hedges(store) == [("AAPL", "BUY", "2", "filled")]
    assert await state_events(store) == [
        ("*", "halted", "test", "maintenance"),
        ("AAPL", "active", "test", "checked"),
    ]
    await stop(engine, task, store)


async def test_reducing_lets_only_shrinking_orders_out(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    source = QueueSource()
    config = make_config(tmp_path, reconciliation={"starting_positions": {"AAPL": "5"}})
    engine, store, task = await start_engine(config, executor, source)
    await engine.set_trading_state("AAPL", "reducing", "wind down", "test")
    source.push(fill(1, "tAAPL", "SELL", "2", "100"))  # hedge: BUY 2, grows the +5 position
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    source.push(fill(2, "tAAPL", "BUY", "5", "100"))  # net +3: hedge SELL 3 shrinks it
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert await hedges(store) == [("AAPL", "SELL", "3", "filled")]
    assert engine.status.blocked == {}
    await stop(engine, task, store)


async def test_a_state_set_while_the_engine_runs_or_is_down_is_applied_and_recorded(
    tmp_path: Path,
) -> None:
    executor = ScriptedExecutor()
    source = QueueSource()
    config = make_config(tmp_path, risk={"state_poll_interval": 0.05})
    engine, store, task = await start_engine(config, executor, source)
    log = TradingStateLog(config.database_path)
    log.append_sync("AAPL", "halted", "from the CLI", "cli")  # another process's write
    await wait_for(lambda: engine.status.trading_state.get("AAPL", {}).get("state") == "halted")
    source.push(fill(1, "tAAPL", "SELL", "1", "100"))
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    await stop(engine, task, store)

    # Written while no engine runs: applied (and recorded once) on the next start.
    log.append_sync("AAPL", "active", "resume", "cli")
    engine, store, task = await start_engine(config, executor, QueueSource())
    await wait_for(lambda: engine.status.hedges_filled == 1)
    await asyncio.sleep(0.2)
    assert await state_events(store) == [
        ("AAPL", "halted", "cli", "from the CLI"),
        ("AAPL", "active", "cli", "resume"),
    ]
    await stop(engine, task, store)


async def test_the_daily_notional_counts_filled_hedges(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    source = QueueSource()
    config = make_config(tmp_path, risk={"max_daily_notional": "500"})
    engine, store, task = await start_engine(config, executor, source)
    source.push(fill(1, "tAAPL", "SELL", "3", "100"))  # $300: fits
    await wait_for(lambda: engine.status.hedges_filled == 1)
    source.push(fill(2, "tAAPL", "SELL", "3", "100"))  # $300 more: $600 > $500
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    assert engine.status.blocked["AAPL"]["limit"] == "max_daily_notional"
    await stop(engine, task, store)
    # The day's notional survives a restart (read back from the hedge orders).
    engine, store, task = await start_engine(config, executor, QueueSource())
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    assert len(await hedges(store)) == 1
    await stop(engine, task, store)

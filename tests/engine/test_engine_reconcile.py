"""Reconciliation in the real engine: broker positions vs the books' hedged positions."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from support.executors import ScriptedExecutor
from support.fills import fill
from support.harness import QueueSource, make_config, start_engine, stop, wait_for

from st0x_liquidity.domain.orders import OrderRules
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.errors import RetryableBrokerError
from st0x_liquidity.protocols import Inventory, Position


class HoldingExecutor(ScriptedExecutor):
    """Reports the filled orders as its positions, plus ``extra`` shares per symbol."""

    def __init__(self, extra: dict[str, str] | None = None) -> None:
        super().__init__(OrderRules.whole_shares())
        self.extra = {k: Decimal(v) for k, v in (extra or {}).items()}
        self.failures = 0
        self.inventory_calls = 0

    async def inventory(self) -> Inventory:
        self.inventory_calls += 1
        if self.failures:
            self.failures -= 1
            raise RetryableBrokerError("positions endpoint busy")
        held = dict(self.extra)
        for cid, order in self.orders.items():
            update = self.updates[f"b-{cid}"]
            sign = 1 if order.side.value == "BUY" else -1
            held[order.symbol.ticker] = held.get(order.symbol.ticker, Decimal(0)) + sign * (
                update.filled_quantity
            )
        positions = tuple(Position(Symbol(s), q) for s, q in sorted(held.items()))
        return Inventory(positions, Decimal(0), datetime.now(UTC))


async def checks(store) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    rows = await store.fetch(
        "SELECT payload FROM events WHERE aggregate_type = 'Reconciliation' ORDER BY rowid"
    )
    return [json.loads(r[0]) for r in rows]


async def test_positions_that_match_the_books_reconcile(tmp_path: Path) -> None:
    executor = HoldingExecutor({"AAPL": "10"})
    config = make_config(
        tmp_path, reconciliation={"interval": 0.1, "starting_positions": {"AAPL": "10"}}
    )
    source = QueueSource()
    engine, store, task = await start_engine(config, executor, source)
    source.push(fill(1, "tAAPL", "SELL", "2", "100"))  # hedge BUY 2: broker 12
    await wait_for(lambda: engine.status.hedges_filled == 1)
    await wait_for(
        lambda: (
            (engine.status.reconciliation or {}).get("symbols")
            == [
                {
                    "symbol": "AAPL",
                    "broker": "12",
                    "books": "12",
                    "difference": "0",
                    "mismatch": False,
                }
            ]
        )
    )
    assert engine.status.reconciliation["status"] == "ok"
    assert (await checks(store))[0]["status"] == "ok"
    await stop(engine, task, store)


async def test_a_mismatch_alerts_and_halts_the_symbol(tmp_path: Path) -> None:
    executor = HoldingExecutor({"AAPL": "3", "TSLA": "1"})
    config = make_config(tmp_path, reconciliation={"interval": 0.05, "halt_on_mismatch": True})
    source = QueueSource()
    engine, store, task = await start_engine(config, executor, source)
    await wait_for(lambda: engine.status.trading_state.get("AAPL", {}).get("state") == "halted")
    recon = engine.status.reconciliation
    assert recon is not None and recon["status"] == "mismatch"
    assert {s["symbol"]: s["difference"] for s in recon["symbols"]} == {"AAPL": "3", "TSLA": "1"}
    assert (
        "reconciliation mismatch: broker holds 3, the books say 0"
        in (engine.status.trading_state["AAPL"]["reason"])
    )
    await wait_for(lambda: engine.status.trading_state.get("TSLA", {}).get("state") == "halted")
    # A halted symbol's hedge is blocked; nothing is lost.
    source.push(fill(1, "tAAPL", "BUY", "1", "100"))
    await wait_for(lambda: "AAPL" in engine.status.blocked)
    assert executor.place_calls == {}
    # Halted once, not again at every run.
    await asyncio.sleep(0.3)
    rows = await store.fetch("SELECT symbol, actor FROM trading_state_log ORDER BY id")
    assert rows == [("AAPL", "reconciliation"), ("TSLA", "reconciliation")]
    await stop(engine, task, store)


async def test_no_hedge_goes_out_before_the_first_reconciliation_answers(tmp_path: Path) -> None:
    executor = HoldingExecutor()
    executor.failures = 3
    config = make_config(tmp_path, reconciliation={"interval": 60})
    source = QueueSource()
    engine, store, task = await start_engine(config, executor, source)
    source.push(fill(1, "tAAPL", "SELL", "2", "100"))
    await wait_for(lambda: engine.status.fills_ingested == 1)
    await wait_for(lambda: (engine.status.reconciliation or {}).get("status") == "error")
    assert executor.place_calls == {}
    await wait_for(lambda: engine.status.hedges_filled == 1, timeout=30)
    assert executor.inventory_calls == 4
    assert [c["status"] for c in await checks(store)] == ["error"] * 3 + ["ok"]
    await stop(engine, task, store)


async def test_an_executor_without_positions_reports_unsupported_and_hedges(
    tmp_path: Path,
) -> None:
    executor = ScriptedExecutor()
    source = QueueSource()
    engine, store, task = await start_engine(make_config(tmp_path), executor, source)
    source.push(fill(1, "tAAPL", "SELL", "1", "100"))
    await wait_for(lambda: engine.status.hedges_filled == 1)
    assert engine.status.reconciliation is not None
    assert engine.status.reconciliation["status"] == "unsupported"
    assert engine.status.reconciliation["symbols"] == []
    await stop(engine, task, store)

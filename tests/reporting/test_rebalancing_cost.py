"""The P&L summary shows what rebalancing cost (the operations' CostRecorded events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.rebalancing.events import CostRecorded, op_stream
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.reporting.plugin import _print_summary
from st0x_liquidity.reporting.pnl import PnlReporter
from st0x_liquidity.reporting.rebalancing_cost import read_costs, sum_costs
from st0x_liquidity.store.sqlite import SqliteStore

T = datetime(2026, 1, 2, tzinfo=UTC)


def cost(op: str, **items: str) -> CostRecorded:
    return CostRecorded(op, "USDC", {k: Decimal(v) for k, v in items.items()}, T)


@given(st.lists(st.decimals(-10, 10, places=6), max_size=20))
def test_costs_add_up_exactly(amounts: list[Decimal]) -> None:
    events = [cost(f"op{i}", cctp=str(a)) for i, a in enumerate(amounts)]
    summed = sum_costs(events)
    assert summed.total == sum(amounts, Decimal(0))
    assert summed.operations == len(amounts)


def test_an_operation_recorded_twice_counts_once() -> None:
    summed = sum_costs([cost("a", cctp="1"), cost("a", cctp="2", broker="0.5")])
    assert summed.total == Decimal("2.5") and summed.operations == 1


async def test_summary_shows_the_rebalancing_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with SqliteStore(tmp_path / "st0x.db") as store:
        log = RebalancingLog(tmp_path / "st0x.db")
        await log.open()
        assert (await read_costs(store.reads)).operations == 0
        await log.append(
            op_stream("a"), [cost("a", conversion="0.05", cctp="0.02")], core_position=0
        )
        await log.append(op_stream("b"), [cost("b", cctp="0.0065", broker="0.1")], core_position=0)
        await log.close()
        reporter = PnlReporter.on(store)
        await reporter.catch_up()
        await _print_summary(reporter, as_json=True)
        data = json.loads(capsys.readouterr().out)
        assert data["rebalancing_cost"] == {
            "total": "0.1765",
            "items": {"broker": "0.1", "cctp": "0.0265", "conversion": "0.05"},
            "operations": 2,
        }
        assert data["realized_after_rebalancing"] == "-0.1765"
        await _print_summary(reporter, as_json=False)
        assert "rebalancing cost: 0.18 USD over 2 operations" in capsys.readouterr().out

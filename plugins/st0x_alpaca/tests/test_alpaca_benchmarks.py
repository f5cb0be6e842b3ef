"""Scaled-down runs of the plugin's benchmarks, checking their invariants.

Timing targets are loose here (the machine is shared); the full numbers come
from ``python plugins/st0x_alpaca/benchmarks/bench_alpaca.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_alpaca.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("st0x_alpaca_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
async def test_sustained_hedging_stays_at_the_rate_limit_floor() -> None:
    result = await load().sustained(hedges=300, time_scale=60.0)  # 200 per 1 s window
    assert result["placed"] == result["orders_at_fake"] == 300
    assert result["duplicates"] == 0 and result["errors"] == []
    assert result["elapsed_s"] <= result["floor_s"] * 1.6 + 1.0


@pytest.mark.slow
async def test_overdriven_client_absorbs_the_servers_limit() -> None:
    result = await load().sustained(hedges=300, time_scale=60.0, client_rate=600.0)
    assert result["placed"] == result["orders_at_fake"] == 300
    assert result["duplicates"] == 0 and result["errors"] == []


@pytest.mark.slow
async def test_placement_overhead_benchmark_runs() -> None:
    """The benchmark itself works; its figure (target 1.5x) lives in docs/performance.md,
    not in an assertion that a loaded machine fails at random."""
    result = await load().placement_overhead(iterations=20)
    assert result["plugin_median_ms"] > 0 and result["bare_median_ms"] > 0
    assert result["ratio"] > 0

"""Rebalancing tests share helper modules (``rebalancing_*.py``, ``usdc_env.py``) from this
folder, and a ``log`` fixture: the rebalancing log of the module's ``env`` fixture, opened
for the test and closed after."""

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from rebalancing_support import RunEnv  # noqa: E402  (needs HERE on sys.path)

from st0x_liquidity.rebalancing.log import RebalancingLog  # noqa: E402


@pytest.fixture
async def log(env: RunEnv) -> AsyncIterator[RebalancingLog]:
    opened = RebalancingLog(env.tmp / "st0x.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()

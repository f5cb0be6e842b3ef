"""CCTP tests: two real anvil chains with the CCTP V2 stand-ins, and the fake Iris.

``cctp_pair`` is :func:`st0x_testing.cctp_devnet.start_cctp_pair` (tests elsewhere import
that function directly: fixtures here are only visible under ``tests/cctp``).
Helper modules (``cctp_*.py``) in this folder are importable by the tests.
"""

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from st0x_testing.cctp_devnet import CctpPair, start_cctp_pair
from st0x_testing.fake_iris import FakeIris

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture
async def cctp_pair(tmp_path: Path) -> AsyncIterator[CctpPair]:
    pair = await start_cctp_pair(tmp_path)
    try:
        yield pair
    finally:
        await pair.stop()


@pytest.fixture
async def fake_iris(cctp_pair: CctpPair) -> AsyncIterator[FakeIris]:
    iris = await cctp_pair.start_iris()
    try:
        yield iris
    finally:
        await iris.stop()

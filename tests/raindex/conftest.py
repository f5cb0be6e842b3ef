"""Raindex tests share helper modules (``raindex_*.py``) from this folder, and the real
chain fixtures below: a fresh anvil, a WebSocket client to it, the deployed devnet (V5
unless the test parametrizes ``layout``), a
SQLite store and a fault-injecting RPC proxy, each stopped when its test ends."""

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from raindex_chain import RpcProxy  # noqa: E402  (needs HERE on sys.path)
from st0x_testing import raindex_devnet as dn  # noqa: E402

from st0x_liquidity.store.sqlite import SqliteStore  # noqa: E402


@pytest.fixture
async def anvil() -> AsyncIterator[dn.Anvil]:
    node = dn.start_anvil()
    yield node
    node.stop()


@pytest.fixture
async def chain(anvil: dn.Anvil) -> AsyncIterator[dn.Chain]:
    c = await dn.Chain.connect(anvil.ws_url)
    yield c
    await c.close()


@pytest.fixture
def layout() -> str:
    """Which devnet orderbook: ``v5``, ``v6`` or ``v6-vaultless`` (the maker's orders in its
    wallet); a test parametrizes ``layout`` to run on several."""
    return "v5"


@pytest.fixture
async def devnet(chain: dn.Chain, layout: str) -> dn.Devnet:
    interface, _, vaultless = layout.partition("-")
    return await dn.deploy(chain, interface=interface, vaultless=bool(vaultless))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "raindex.sqlite")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def proxy(anvil: dn.Anvil) -> AsyncIterator[RpcProxy]:
    p = RpcProxy(anvil.ws_url)
    await p.start()
    yield p
    await p.stop()

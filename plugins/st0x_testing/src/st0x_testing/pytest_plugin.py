"""pytest fixtures for st0x-liquidity plugin authors (the ``pytest11`` entry point ``st0x_testing``).

Installing st0x-liquidity-testing is enough: pytest loads this module by itself,
and a test asks for a fixture by name (``-p no:st0x_testing`` switches it off).
The fixtures are async (pytest-asyncio; with its strict mode, mark the tests
``@pytest.mark.asyncio``), and each stops what it started when its test ends:

* ``st0x_fake_alpaca`` – a running :class:`~st0x_testing.fake_alpaca.FakeAlpacaTrading`
  on ``127.0.0.1`` (``.base_url``, ``.key_id``, ``.secret_key``; its ``orders``,
  ``positions`` and ``requests`` are inspectable and ``inject(...)`` adds faults);
* ``st0x_devnet`` – anvil with the project's test orderbook deployed, a maker's
  two-sided orders placed (:class:`RunningDevnet`); skipped when anvil is not
  installed (``npm install @foundry-rs/anvil``, or set ``ST0X_TOOLS`` to a folder
  whose ``node_modules/.bin`` holds it);
* ``st0x_store`` – an open SQLite store on a temporary file, holding the
  database's lease as the engine's does (a ``st0x_liquidity.PositionStore``).

Module-level imports are pytest's only: the fixtures import what they need, so
pytest starts as fast with this plugin as without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from st0x_liquidity import PositionStore

    from .fake_alpaca import FakeAlpacaTrading
    from .raindex_devnet import Anvil, Chain, Devnet


@attrs.define
class RunningDevnet:
    """The ``st0x_devnet`` fixture: a running anvil, a client to it and the deployed contracts."""

    anvil: Anvil
    chain: Chain
    contracts: Devnet

    @property
    def ws_url(self) -> str:
        return self.anvil.ws_url

    def config_toml(self, database: str, **options: Any) -> str:
        """A bot config for this devnet (raindex source, dry-run broker unless
        ``broker_lines`` says otherwise); see ``raindex_devnet.config_toml``."""
        from .raindex_devnet import config_toml

        return config_toml(self.contracts, self.ws_url, database, **options)


@pytest_asyncio.fixture
async def st0x_fake_alpaca() -> AsyncIterator[FakeAlpacaTrading]:
    """A fake Alpaca Trading API on ``127.0.0.1:<free port>``, stopped after the test."""
    from .fake_alpaca import FakeAlpacaTrading

    fake = FakeAlpacaTrading()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def st0x_devnet() -> AsyncIterator[RunningDevnet]:
    """Anvil with the test orderbook (IOrderBookV5) deployed; skips the test without anvil."""
    from . import raindex_devnet as dn

    try:
        dn.anvil_binary()
    except FileNotFoundError:
        pytest.skip("anvil is not installed (npm install @foundry-rs/anvil)")
    anvil = dn.start_anvil()
    try:
        chain = await dn.Chain.connect(anvil.ws_url)
        try:
            yield RunningDevnet(anvil, chain, await dn.deploy(chain))
        finally:
            await chain.close()
    finally:
        anvil.stop()


@pytest_asyncio.fixture
async def st0x_store(tmp_path: Path) -> AsyncIterator[PositionStore]:
    """An open SQLite store on ``tmp_path / "st0x.sqlite"``, holding the lease; closed after."""
    from st0x_liquidity.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "st0x.sqlite", lease=True)
    await store.open()
    try:
        yield store
    finally:
        await store.close()

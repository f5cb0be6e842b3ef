"""Types for tests that run on both store backends (``tests/store/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable

from st0x_liquidity.store.postgres import PostgresStore
from st0x_liquidity.store.sqlite import SqliteStore

Store = SqliteStore | PostgresStore
OpenStore = Callable[..., Store]

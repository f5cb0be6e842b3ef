"""Every store test runs on both backends unless it is about one of them.

``open_store(**options)`` opens a store on this test's database (the same
one each call): a SQLite file in ``tmp_path``, or a fresh database on the
session's PostgreSQL server. Tests about SQLite alone (files, permissions,
``flock``, SQLite's own migrations and query plans) take ``sqlite_only``
or use :class:`SqliteStore` directly and are marked ``sqlite``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.stores import OpenStore, Store

from st0x_liquidity.store.postgres import PostgresStore
from st0x_liquidity.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """This test's database: a SQLite file path or a PostgreSQL URL."""
    if backend == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "s.db")


@pytest.fixture
def open_store(backend: str, database: str) -> OpenStore:
    def make(**options: Any) -> Store:
        if backend == "postgres":
            options.pop("synchronous", None)
            return PostgresStore(database, **options)
        options.pop("lease_ttl", None)
        return SqliteStore(database, **options)

    return make

"""Fixtures: a real fake-Schwab HTTP server on 127.0.0.1, a real SQLite store."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from st0x_schwab.config import SchwabConfig
from st0x_schwab.executor import SchwabExecutor
from st0x_testing.fake_schwab import FakeSchwab, TestClock

from st0x_liquidity import Secret
from st0x_liquidity.store import SqliteStore

# A Wednesday, 10:00 in New York: the market is open.
WEDNESDAY_MORNING = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> TestClock:
    return TestClock(WEDNESDAY_MORNING)


@pytest.fixture
async def fake(clock: TestClock) -> AsyncIterator[FakeSchwab]:
    server = FakeSchwab(now=clock.now)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def key_hex() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def config(fake: FakeSchwab, key_hex: str) -> SchwabConfig:
    return SchwabConfig(
        app_key=fake.app_key,
        app_secret=Secret(fake.app_secret),
        encryption_key=Secret(key_hex),
        redirect_uri=fake.redirect_uri,
        base_url=fake.url,
        retry_backoff=0.01,
        requests_per_minute=100_000,
        request_timeout=5.0,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "st0x.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(db_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def executor(
    config: SchwabConfig, store: SqliteStore, clock: TestClock
) -> AsyncIterator[SchwabExecutor]:
    ex = SchwabExecutor(config, store, now=clock.now)
    await ex.http.start()
    try:
        yield ex
    finally:
        await ex.close()


@pytest.fixture
async def authorized(executor: SchwabExecutor, fake: FakeSchwab) -> SchwabExecutor:
    """The executor after a completed OAuth login."""
    await executor.tokens.exchange_code(fake.issue_code())
    return executor

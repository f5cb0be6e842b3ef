"""Config through the core's loader, the client-side request budget, transport failures."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from st0x_schwab.config import SchwabConfig
from st0x_schwab.executor import SchwabExecutor
from st0x_schwab.http import RateLimiter
from st0x_testing.fake_schwab import FakeSchwab, TestClock

from st0x_liquidity import (
    AmbiguousBrokerError,
    ConfigError,
    Direction,
    MarketOrder,
    OrderState,
    RetryableBrokerError,
    Symbol,
    load_config,
    load_registry,
)
from st0x_liquidity.store import SqliteStore

KEY = "5f" * 32


def write(tmp_path: Path, broker: str) -> Path:
    path = tmp_path / "st0x.toml"
    path.write_text(
        'database_url = "sqlite:st0x.db"\n[source]\ntype = "replay"\npath = "f.jsonl"\n'
        f'[broker]\ntype = "schwab"\n{broker}'
    )
    return path


def test_config_from_file_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'app_key = "k"\naccount_number = "12345678"\n')
    env = {"ST0X_BROKER_APP_SECRET": "s3cr3t", "ST0X_BROKER_ENCRYPTION_KEY": "0x" + KEY}
    config = load_config(path, load_registry(), env)
    broker = config.broker
    assert isinstance(broker, SchwabConfig)
    assert broker.app_secret.get() == "s3cr3t" and broker.key_bytes() == bytes([0x5F]) * 32
    assert broker.account_number == "12345678" and broker.base_url == "https://api.schwabapi.com"
    assert "s3cr3t" not in repr(broker) and KEY not in repr(broker)


@pytest.mark.parametrize(
    ("broker", "env", "key"),
    [
        ("", {"ST0X_BROKER_APP_SECRET": "s", "ST0X_BROKER_ENCRYPTION_KEY": KEY}, "broker.app_key"),
        ('app_key = "k"\n', {"ST0X_BROKER_ENCRYPTION_KEY": KEY}, "broker.app_secret"),
        ('app_key = "k"\n', {"ST0X_BROKER_APP_SECRET": "s"}, "broker.encryption_key"),
        ('app_key = "k"\nencryption_key = "abc"\n', {"ST0X_BROKER_APP_SECRET": "s"},
         "broker.encryption_key"),
        ('app_key = "k"\nbase_url = "ftp://x"\n',
         {"ST0X_BROKER_APP_SECRET": "s", "ST0X_BROKER_ENCRYPTION_KEY": KEY}, "broker.base_url"),
        ('app_key = "k"\nsurprise = 1\n',
         {"ST0X_BROKER_APP_SECRET": "s", "ST0X_BROKER_ENCRYPTION_KEY": KEY}, "broker.surprise"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, broker: str, env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, broker), load_registry(), env)
    # Missing/unknown keys are named in the key path; validator failures in the text.
    assert str(err.value).startswith("broker")
    assert key.rsplit(".", maxsplit=1)[-1] in str(err.value)
    assert KEY not in str(err.value)


async def test_rate_limiter_keeps_to_the_budget() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(3, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await limiter.acquire()
    assert waits == []
    now[0] = 10.0
    await limiter.acquire()
    assert waits == [50.0]  # the fourth waits until the first leaves the window


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_schwab_is_retryable_for_reads_and_ambiguous_for_orders(
    authorized: SchwabExecutor, config: SchwabConfig, store: SqliteStore, clock: TestClock
) -> None:
    await authorized.account_hash()
    down = SchwabExecutor(
        attrs.evolve(config, base_url=f"http://127.0.0.1:{free_port()}", max_retries=2),
        store, now=clock.now,
    )
    down._account_hash = await authorized.account_hash()
    with pytest.raises(RetryableBrokerError, match="unreachable"):
        await down.order_status("1")
    intent = MarketOrder(Symbol("AAPL"), Direction.BUY, Decimal(1), "cid-down", Decimal(1))
    with pytest.raises(AmbiguousBrokerError):
        await down.place_market_order(intent)
    await down.close()


async def test_401_on_the_order_post_refreshes_and_places_once(
    authorized: SchwabExecutor, fake: FakeSchwab
) -> None:
    await authorized.account_hash()
    fake.expire_access_tokens()
    intent = MarketOrder(Symbol("AAPL"), Direction.BUY, Decimal(2), "cid-401", Decimal(1))
    update = await authorized.place_market_order(intent)
    assert update.state is OrderState.SUBMITTED
    assert len(fake.orders) == 1 and fake.token_grants[-1] == "refresh_token"


async def test_concurrent_callers_refresh_once(
    authorized: SchwabExecutor, fake: FakeSchwab, clock: TestClock
) -> None:
    await authorized.account_hash()
    clock.advance(minutes=31)
    oid = str(fake.add_order("AAPL", "BUY", 1).order_id)
    await asyncio.gather(*(authorized.order_status(oid) for _ in range(5)))
    assert fake.token_grants.count("refresh_token") == 1

"""Both plugins through the core: entry points, [broker] tables, environment secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from st0x_alpaca import AlpacaTradingConfig, AlpacaTradingExecutor
from st0x_alpaca_broker import AlpacaBrokerConfig, AlpacaBrokerExecutor

from st0x_liquidity import (
    AppConfig,
    ConfigError,
    Executor,
    ExecutorContext,
    load_config,
    load_registry,
)
from st0x_liquidity.store.sqlite import SqliteStore

ACCOUNT = "5fc0795e-1f16-40cc-aa90-ede67c39d7a9"


def write(tmp_path: Path, broker: str) -> Path:
    (tmp_path / "fills.jsonl").write_text("")
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
database_url = "st0x.db"
[source]
type = "replay"
path = "fills.jsonl"
[broker]
{broker}
"""
    )
    return path


def test_entry_points_register_both_executors() -> None:
    registry = load_registry()
    assert registry.executors["alpaca-trading-api"].config_class is AlpacaTradingConfig
    assert registry.executors["alpaca-broker-api"].config_class is AlpacaBrokerConfig
    assert registry.origin["executor:alpaca-trading-api"] == "alpaca"
    assert registry.origin["executor:alpaca-broker-api"] == "alpaca-broker"


def test_trading_config_with_secrets_from_the_environment(tmp_path: Path) -> None:
    registry = load_registry()
    path = write(tmp_path, 'type = "alpaca-trading-api"\nmode = "live"\nmin_notional = "5"')
    env = {"ST0X_BROKER_API_KEY": "AKLIVE123", "ST0X_BROKER_API_SECRET": "live-secret-xyz"}
    config = load_config(path, registry, env=env)
    broker = config.broker
    assert isinstance(broker, AlpacaTradingConfig)
    assert broker.api_secret.get() == "live-secret-xyz"
    assert "live-secret-xyz" not in repr(broker) and "AKLIVE123" not in repr(broker)
    assert broker.resolved_base_url() == "https://api.alpaca.markets"
    executor = registry.executors["alpaca-trading-api"].factory(broker, _context(config, tmp_path))
    assert isinstance(executor, AlpacaTradingExecutor) and isinstance(executor, Executor)
    assert executor.order_rules.min_notional == 5


def test_trading_mode_defaults_to_paper_and_accepts_the_reference_spelling(tmp_path: Path) -> None:
    registry = load_registry()
    keys = 'api_key = "PK1"\napi_secret = "s"\n'
    paper = load_config(write(tmp_path, f'type = "alpaca-trading-api"\n{keys}'), registry, env={})
    assert paper.broker.resolved_base_url() == "https://paper-api.alpaca.markets"
    legacy = load_config(
        write(tmp_path, f'type = "alpaca-trading-api"\n{keys}trading_mode = "live"'), registry, env={}
    )
    assert legacy.broker.resolved_base_url() == "https://api.alpaca.markets"
    custom = load_config(
        write(tmp_path, f'type = "alpaca-trading-api"\n{keys}base_url = "http://127.0.0.1:9"'),
        registry,
        env={},
    )
    assert custom.broker.resolved_base_url() == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('type = "alpaca-trading-api"\napi_key = "k"', "broker.api_secret"),
        ('type = "alpaca-trading-api"\napi_key = "k"\napi_secret = "s"\nmode = "prod"', "broker.mode"),
        ('type = "alpaca-trading-api"\napi_key = "k"\napi_secret = "s"\nsecret = "x"', "broker.secret"),
        ('type = "alpaca-broker-api"\napi_key = "k"\napi_secret = "s"', "broker.account_id"),
        (
            'type = "alpaca-broker-api"\napi_key = "k"\napi_secret = "s"\naccount_id = "x"',
            "broker.account_id",
        ),
    ],
)
def test_bad_tables_name_the_key(tmp_path: Path, table: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, table), load_registry(), env={})
    # attrs validators report at the table; the message then names the key
    assert caught.value.key == key or key.split(".")[1] in str(caught.value)


def test_broker_config_from_file_and_env(tmp_path: Path) -> None:
    registry = load_registry()
    path = write(tmp_path, f'type = "alpaca-broker-api"\naccount_id = "{ACCOUNT}"')
    env = {
        "ST0X_BROKER_API_KEY": "CK1",
        "ST0X_BROKER_API_SECRET": "broker-secret",
        "ST0X_BROKER_MODE": "production",
    }
    config = load_config(path, registry, env=env)
    broker = config.broker
    assert isinstance(broker, AlpacaBrokerConfig)
    assert broker.resolved_base_url() == "https://broker-api.alpaca.markets"
    executor = registry.executors["alpaca-broker-api"].factory(broker, _context(config, tmp_path))
    assert isinstance(executor, AlpacaBrokerExecutor) and isinstance(executor, Executor)
    assert executor.name == "alpaca-broker-api"


def _context(config: AppConfig, tmp_path: Path) -> ExecutorContext:
    """What the runner hands a factory: the config and the (unopened) store."""
    return ExecutorContext(app=config, store=SqliteStore(tmp_path / "bot.db"))

"""database_url: a SQLite file (the default) or a postgresql:// URL whose password never shows."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from st0x_liquidity.app import open_store
from st0x_liquidity.config import AppConfig, parse_config
from st0x_liquidity.errors import ConfigError
from st0x_liquidity.logs import secrets_in, setup_logging
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.store.postgres import PostgresStore
from st0x_liquidity.store.sqlite import SqliteStore

BASE = {"source": {"type": "replay", "path": "f.jsonl"}, "broker": {"type": "dry-run"}}
URL = "postgresql://bot:s3cr3t-pw@db.internal:5433/st0x"


def parse(url: str, env: dict[str, str] | None = None) -> AppConfig:
    raw = {**BASE, "database_url": url}
    return parse_config(raw, load_registry(), config_dir=Path("/cfg"), env=env or {})


def test_a_postgresql_url_selects_the_postgres_store_and_hides_its_password() -> None:
    config = parse(URL)
    assert config.postgres is not None
    assert config.postgres.display == "postgresql://bot@db.internal:5433/st0x"
    assert "s3cr3t-pw" not in repr(config)
    assert "s3cr3t-pw" in secrets_in(config)
    assert config.database_path == Path("/cfg/st0x")
    store = open_store(config)
    assert isinstance(store, PostgresStore)
    assert store.name == "postgresql://bot@db.internal:5433/st0x"


def test_the_url_may_come_from_the_environment() -> None:
    config = parse("st0x.db", env={"ST0X_DATABASE_URL": URL})
    assert config.postgres is not None
    assert isinstance(open_store(config), PostgresStore)


def test_sqlite_stays_the_default() -> None:
    config = parse("st0x.db")
    assert config.postgres is None
    assert isinstance(open_store(config), SqliteStore)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql:///st0x", "must name a host"),
        ("postgresql://bot:s3cr3t-pw@db.internal:5433", "must name a database"),
        ("postgresql://bot:s3cr3t-pw@db.internal:notaport/st0x", "not a valid postgresql"),
    ],
)
def test_a_bad_url_is_one_line_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        parse(url)
    assert "s3cr3t-pw" not in str(error.value)


def test_the_dashboard_is_served_on_postgres() -> None:
    config = parse_config(
        {**BASE, "database_url": URL, "dashboard": {"enabled": True}}, load_registry(), env={}
    )
    assert "dashboard" in config.sections


def test_the_password_is_redacted_from_logs(capsys: pytest.CaptureFixture[str]) -> None:
    config = parse(URL)
    setup_logging("info", "text", secrets_in(config))
    logging.getLogger("t").warning("connecting with s3cr3t-pw")
    assert "s3cr3t-pw" not in capsys.readouterr().err

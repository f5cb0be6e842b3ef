"""``[ha]``: defaults that take over within 10 s, checked so a healthy leader never fences itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from st0x_liquidity.app import open_store
from st0x_liquidity.config import AppConfig, parse_config
from st0x_liquidity.errors import ConfigError
from st0x_liquidity.ha.settings import HaConfig
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.store.postgres import PostgresStore

BASE = {"source": {"type": "replay", "path": "f.jsonl"}, "broker": {"type": "dry-run"}}
URL = "postgresql://bot:pw@db.internal:5433/st0x"


def parse(ha: dict[str, Any] | None, url: str = URL, env: dict[str, str] | None = None) -> AppConfig:
    raw: dict[str, Any] = {**BASE, "database_url": url}
    if ha is not None:
        raw["ha"] = ha
    return parse_config(raw, load_registry(), config_dir=Path("/cfg"), env=env or {})


def test_the_defaults_take_over_within_ten_seconds_of_the_last_renewal() -> None:
    ha = parse(None).ha
    assert ha == HaConfig()
    assert ha.standby is True
    assert ha.takeover_bound <= 10
    # Two renewals fit before the leader fences itself.
    assert 2 * ha.renew_interval <= ha.lease_ttl - ha.fence_margin


def test_the_settings_reach_the_store() -> None:
    config = parse({"lease_ttl": 3, "renew_interval": 0.5, "fence_margin": 1, "standby_poll": 0.2})
    store = open_store(config, lease=True, standby=True)
    assert isinstance(store, PostgresStore)
    assert (store._ttl, store._renew_every, store._margin, store._standby) == (3.0, 0.5, 1.0, True)


def test_the_environment_sets_them_too() -> None:
    assert parse(None, env={"ST0X_HA_STANDBY": "false"}).ha.standby is False


@pytest.mark.parametrize(
    ("ha", "message"),
    [
        ({"lease_ttl": 0}, "ha.lease_ttl: must be positive"),
        ({"lease_ttl": 4, "fence_margin": 4}, r"ha.fence_margin: must be less than lease_ttl \(4\)"),
        ({"renew_interval": 3}, r"ha.renew_interval: must be at most \(lease_ttl - fence_margin\) / 2 = 2"),
        ({"standby_poll": -1}, "ha.standby_poll: must be positive"),
        ({"standby": "yes"}, "ha.standby"),
        ({"lease": 5}, "ha.lease: unknown key"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(ha: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(ha)


def test_ha_needs_postgresql() -> None:
    with pytest.raises(ConfigError, match="ha: needs a postgresql:// database_url"):
        parse({"standby": True}, url="st0x.db")

"""The [source] table for type = "raindex", through the real config parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from st0x_liquidity.config import parse_config
from st0x_liquidity.errors import ConfigError
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.raindex.plugin import _factory
from st0x_liquidity.raindex.source import RaindexConfig, RaindexSource
from st0x_liquidity.registry import ExecutorContext


def raw(**source: Any) -> dict[str, Any]:
    return {
        "database_url": "x.sqlite",
        "evm": {
            "ws_rpc_url": "ws://127.0.0.1:1",
            "orderbook": "0x" + "0b" * 20,
            "order_owner": "0x" + "dd" * 20,
            "deployment_block": 5,
        },
        "source": {"type": "raindex", **source},
        "broker": {"type": "dry-run"},
    }


def test_parses_and_builds_the_source(tmp_path: Path) -> None:
    registry = load_registry()
    config = parse_config(
        raw(cutoff=3, pyth_feeds={"AAPL": "0x" + "ab" * 32}, usdc_address="0x" + "AA" * 20),
        registry,
        config_dir=tmp_path,
        env={},
    )
    assert isinstance(config.source, RaindexConfig)
    assert config.source.cutoff == 3
    source = _factory(config.source, ExecutorContext(app=config, store=None))  # type: ignore[arg-type]
    assert isinstance(source, RaindexSource)
    assert source.usdc == "0x" + "aa" * 20 and source.feeds == {"AAPL": "0x" + "ab" * 32}


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ({"cutoff": "soon"}, "source"),
        ({"nope": 1}, "source.nope"),
        ({"poll_interval": "x"}, "source.poll_interval"),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, source: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw(**source), load_registry(), config_dir=tmp_path, env={})
    assert key in str(info.value)


def test_missing_evm_section_is_a_config_error(tmp_path: Path) -> None:
    data = raw()
    del data["evm"]
    config = parse_config(data, load_registry(), config_dir=tmp_path, env={})
    with pytest.raises(ConfigError, match="evm"):
        _factory(config.source, ExecutorContext(app=config, store=None))  # type: ignore[arg-type]


def _built(tmp_path: Path, evm_cutoff: Any, **source: Any) -> RaindexSource:
    data = raw(**source)
    data["evm"]["cutoff"] = evm_cutoff
    config = parse_config(data, load_registry(), config_dir=tmp_path, env={})
    return _factory(config.source, ExecutorContext(app=config, store=None))  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [("safe", "safe"), ("finalized", "finalized"), (6, 6)])
def test_cutoff_in_the_evm_section(tmp_path: Path, value: Any, expected: Any) -> None:
    """The issue names the key ``evm.cutoff``; it reaches the source like ``[source] cutoff``."""
    assert _built(tmp_path, value).config.cutoff == expected
    assert _built(tmp_path, value, cutoff=value).config.cutoff == expected


@pytest.mark.parametrize(
    ("value", "source", "message"),
    [
        ("soon", {}, "evm.cutoff: must be latest, safe, finalized or a number"),
        (-1, {}, "evm.cutoff"),
        ("safe", {"cutoff": "finalized"}, "disagrees with [source] cutoff"),
    ],
)
def test_bad_evm_cutoff_is_named(
    tmp_path: Path, value: Any, source: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _built(tmp_path, value, **source)
    assert message in str(info.value)


def test_orderbook_interface_defaults_to_v5_and_accepts_v6(tmp_path: Path) -> None:
    registry = load_registry()
    config = parse_config(raw(), registry, config_dir=tmp_path, env={})
    assert config.evm is not None and config.evm.orderbook_interface == "v5"
    v6 = raw()
    v6["evm"]["orderbook_interface"] = "v6"
    config = parse_config(v6, registry, config_dir=tmp_path, env={})
    assert config.evm is not None and config.evm.orderbook_interface == "v6"
    env = parse_config(raw(), registry, env={"ST0X_EVM_ORDERBOOK_INTERFACE": "v6"})
    assert env.evm is not None and env.evm.orderbook_interface == "v6"
    bad = raw()
    bad["evm"]["orderbook_interface"] = "V6.1"
    with pytest.raises(ConfigError) as info:
        parse_config(bad, registry, config_dir=tmp_path, env={})
    assert "evm.orderbook_interface: must be one of" in str(info.value)

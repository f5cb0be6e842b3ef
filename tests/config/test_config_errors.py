"""Bad configs: one clear line naming the key, exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from st0x_liquidity.config import Secret, parse_config
from st0x_liquidity.errors import ConfigError
from st0x_liquidity.plugins import load_registry

REGISTRY = load_registry()
BASE: dict[str, Any] = {
    "database_url": "x.db",
    "source": {"type": "replay", "path": "f.jsonl"},
    "broker": {"type": "dry-run"},
}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "database_url: required key is missing"),
        ({**BASE, "broker": {"type": "nope"}}, "broker.type: unknown broker type 'nope' (known: "),
        ({**BASE, "broker": {}}, "broker.type: required key is missing"),
        (
            {**BASE, "hedging": {"poll_interval": "fast"}},
            "hedging.poll_interval: expected a number",
        ),
        ({**BASE, "broker": {"type": "dry-run", "foo": 1}}, "broker.foo: unknown key"),
        (
            {**BASE, "broker": {"type": "dry-run", "profile": "odd"}},
            "broker.profile: must be one of",
        ),
        ({**BASE, "source": {"type": "replay"}}, "source.path: required key is missing"),
        ({**BASE, "surprise": 1}, "surprise: unknown key"),
        ({**BASE, "hedging": [1]}, "hedging: must be a table"),
        ({**BASE, "log_level": "loud"}, "log_level: must be one of"),
        ({**BASE, "database_url": ":memory:"}, "database_url: must name a file"),
        (
            {**BASE, "broker": {"type": "dry-run", "min_notional": 0.5}},
            "broker.min_notional: value must be given as a string or integer, not a float",
        ),
        (
            {**BASE, "broker": {"type": "dry-run", "failure_rate": "2"}},
            "broker.failure_rate: must be between 0 and 1",
        ),
        # 0 would take nothing from the source, forever.
        ({**BASE, "engine": {"batch_size": 0}}, "engine.batch_size: must be at least 1"),
        (
            {**BASE, "risk": {"symbols": {"tAAPL": {}}}},
            "risk.symbols: 'tAAPL' is not a base ticker (write e.g. AAPL, not tAAPL)",
        ),
        (
            {**BASE, "reconciliation": {"starting_positions": {"aapl": "1"}}},
            "reconciliation.starting_positions: 'aapl' is not a base ticker",
        ),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, REGISTRY, env={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_environment_fills_and_overrides_keys(tmp_path: Path) -> None:
    raw = {**BASE, "broker": {"type": "dry-run", "latency": 1}}
    config = parse_config(
        raw,
        REGISTRY,
        config_dir=tmp_path,
        env={
            "ST0X_BROKER_LATENCY": "2.5",
            "ST0X_DATABASE_URL": "sqlite:////tmp/other.db",
            "ST0X_HEDGING_CLIENT_ORDER_PREFIX": "desk1",
        },
    )
    assert config.broker.latency == 2.5
    assert str(config.database_path) == "/tmp/other.db"
    assert config.hedging.client_order_prefix == "desk1"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config = parse_config(BASE, REGISTRY, config_dir=tmp_path, env={})
    assert config.database_path == tmp_path / "x.db"


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2-very-secret")
    assert (
        "hunter2" not in repr(secret)
        and "hunter2" not in str(secret)
        and "hunter2" not in f"{secret}"
    )


toml_values = st.recursive(
    st.none().filter(lambda _: False)
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from(
    ["database_url", "log_level", "source", "broker", "hedging", "engine", "evm", "junk"]
)
section_keys = st.sampled_from(
    [
        "type",
        "path",
        "follow",
        "profile",
        "latency",
        "poll_interval",
        "min_notional",
        "failure_rate",
        "ws_rpc_url",
        "orderbook",
        "deployment_block",
        "batch_size",
        "x",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        keys,
        toml_values
        | st.dictionaries(
            section_keys, toml_values | st.sampled_from(["replay", "dry-run", "whole"]), max_size=5
        ),
        max_size=7,
    )
)
def test_ugly_configs_raise_config_error_or_parse(raw: dict[str, Any]) -> None:
    try:
        config = parse_config(raw, REGISTRY, env={})
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert config.database_path.name
    for value in (config.hedging.poll_interval, config.engine.shutdown_timeout):
        assert value >= 0
    assert config.engine.batch_size >= 1


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("database_url = \n", "is not valid TOML"),
        (
            'database_url = "x.db"\n[broker]\ntype = "ib"\n[source]\ntype="replay"\npath="f"\n',
            "broker.type: unknown broker type 'ib'",
        ),
        (
            'database_url = "x.db"\n[source]\ntype="replay"\npath="f"\n',
            "broker: required section is missing",
        ),
        (
            'database_url = "x.db"\n[broker]\ntype="dry-run"\nlatency="slow"\n[source]\ntype="replay"\npath="f"\n',
            "broker.latency: expected a number, got 'slow'",
        ),
    ],
)
def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content)
    result = run_cli("run", "--config-file", str(path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_cli_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("positions", "--config-file", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_cli_bad_arguments_exit_2() -> None:
    result = run_cli("run")
    assert result.returncode == 2 and "--config-file" in result.stderr
    result = run_cli("frobnicate")
    assert result.returncode == 2


def test_cli_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("st0x-liquidity ")


def test_decimal_from_toml_float_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'database_url = "x.db"\n[broker]\ntype="dry-run"\nmin_notional=2.10\n[source]\ntype="replay"\npath="f"\n'
    )
    from st0x_liquidity.config import load_config

    config = load_config(path, REGISTRY, env={})
    assert config.broker.min_notional == Decimal("2.10")

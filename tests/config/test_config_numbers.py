"""Numbers in the config: finite, within each key's bound, and of the TOML type asked for.

``poll_interval = 1e400`` used to become infinity (hedges then stayed submitted
forever), ``batch_size = "500"`` was read as 500 and ``follow = "false"`` as
false. Each is now one line naming the key, exit status 2. Values from the
environment are text and still parsed.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from st0x_liquidity.config import MAX_FLOAT, MAX_INT, parse_config, structure
from st0x_liquidity.errors import ConfigError
from st0x_liquidity.plugins import load_registry

REGISTRY = load_registry()
BASE: dict[str, Any] = {
    "database_url": "x.db",
    "source": {"type": "replay", "path": "f.jsonl"},
    "broker": {"type": "dry-run"},
}

# key -> (section, upper bound) as documented in docs/configuration.md
FLOAT_KEYS = {
    "hedging.poll_interval": 3600,
    "hedging.poll_jitter": 3600,
    "hedging.failure_backoff": 86400,
    "hedging.failure_backoff_max": 86400,
    "hedging.retry_backoff_max": 3600,
    "hedging.clock_recheck": 86400,
    "engine.shutdown_timeout": 3600,
    "engine.drain_timeout": 86400,
    "source.poll_interval": 3600,
    "broker.latency": 3600,
}
INT_KEYS = {"engine.batch_size": 100_000, "broker.quantity_decimals": 18}
BOOL_KEYS = ["engine.exit_when_source_ends", "source.follow"]
DECIMAL_KEYS = {"hedging.min_notional": 1_000_000, "broker.min_notional": 1_000_000}


def with_key(key: str, value: Any) -> dict[str, Any]:
    section, name = key.split(".")
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    raw.setdefault(section, {})[name] = value
    return raw


def refused(raw: dict[str, Any], key: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, REGISTRY, env=env or {})
    text = str(info.value)
    assert text.startswith(f"{key}: "), text
    assert "\n" not in text
    return text


def get(config: Any, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


non_finite = st.sampled_from(
    [Decimal("Infinity"), Decimal("-Infinity"), Decimal("NaN"), float("inf"), float("nan")]
)
huge = st.one_of(
    st.integers(min_value=10**9 + 1, max_value=10**400),
    st.integers(min_value=10, max_value=10**6).map(lambda e: Decimal(f"1e{e}")),
    st.floats(min_value=1e9 * 1.01, allow_infinity=False),
)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(sorted(FLOAT_KEYS)), value=non_finite | huge)
def test_non_finite_and_huge_floats_are_refused(key: str, value: Any) -> None:
    refused(with_key(key, value), key)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(sorted(FLOAT_KEYS)), data=st.data())
def test_floats_are_checked_against_each_keys_bound(key: str, data: st.DataObject) -> None:
    bound = FLOAT_KEYS[key]
    inside = data.draw(st.decimals(min_value=0, max_value=bound, places=3))
    assert get(parse_config(with_key(key, inside), REGISTRY, env={}), key) == float(inside)
    outside = data.draw(
        st.decimals(min_value=bound, max_value=10**9, places=3).filter(lambda v: v > bound)
    )
    assert "must be" in refused(with_key(key, outside), key)


@settings(max_examples=100, deadline=None)
@given(key=st.sampled_from(sorted(INT_KEYS)), data=st.data())
def test_integers_are_checked_against_each_keys_bound(key: str, data: st.DataObject) -> None:
    bound = INT_KEYS[key]
    refused(with_key(key, data.draw(st.integers(min_value=bound + 1, max_value=10**40))), key)
    refused(with_key(key, data.draw(non_finite)), key)


@settings(max_examples=100, deadline=None)
@given(
    key=st.sampled_from(sorted({**FLOAT_KEYS, **INT_KEYS})),
    value=st.one_of(
        st.decimals(min_value=0, max_value=50, places=0).map(str),
        st.sampled_from(["500", " 1 ", "1e3", "0.5", "inf", "nan", "fast", ""]),
    ),
)
def test_a_string_is_refused_where_a_number_is_required(key: str, value: str) -> None:
    text = refused(with_key(key, value), key)
    assert "expected" in text and repr(value) in text


@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(sorted({**FLOAT_KEYS, **INT_KEYS})), value=st.booleans())
def test_a_boolean_is_not_a_number(key: str, value: bool) -> None:
    refused(with_key(key, value), key)


@settings(max_examples=50, deadline=None)
@given(
    key=st.sampled_from(BOOL_KEYS),
    value=st.one_of(
        st.sampled_from(["true", "false", "True", "yes"]), st.integers(), st.decimals()
    ),
)
def test_a_boolean_key_takes_only_true_or_false(key: str, value: Any) -> None:
    refused(with_key(key, value), key)


@settings(max_examples=100, deadline=None)
@given(
    key=st.sampled_from(sorted(DECIMAL_KEYS)),
    value=st.one_of(
        st.sampled_from(["Infinity", "NaN", "-inf", "1e400", "1e18"]),
        st.integers(min_value=10**18, max_value=10**60),
        st.integers(min_value=1_000_001, max_value=10**17).map(str),
    ),
)
def test_decimal_keys_refuse_non_finite_and_out_of_range(key: str, value: Any) -> None:
    refused(with_key(key, value), key)


def test_bounds_are_inclusive_and_defaults_unchanged() -> None:
    for key, bound in {**FLOAT_KEYS, **INT_KEYS}.items():
        assert get(parse_config(with_key(key, bound), REGISTRY, env={}), key) == bound
    config = parse_config(BASE, REGISTRY, env={})
    assert (config.hedging.poll_interval, config.engine.batch_size) == (15.0, 500)
    assert config.engine.exit_when_source_ends is True


@pytest.mark.parametrize(
    ("env", "key", "expected"),
    [
        ({"ST0X_ENGINE_BATCH_SIZE": "12"}, "engine.batch_size", 12),
        ({"ST0X_HEDGING_POLL_INTERVAL": "2.5"}, "hedging.poll_interval", 2.5),
        ({"ST0X_ENGINE_EXIT_WHEN_SOURCE_ENDS": "false"}, "engine.exit_when_source_ends", False),
        ({"ST0X_SOURCE_FOLLOW": "yes"}, "source.follow", True),
    ],
)
def test_the_environment_is_text_and_still_parsed(
    env: dict[str, str], key: str, expected: Any
) -> None:
    value = get(parse_config(BASE, REGISTRY, env=env), key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"ST0X_HEDGING_POLL_INTERVAL": "inf"}, "hedging.poll_interval"),
        ({"ST0X_HEDGING_POLL_INTERVAL": "1e400"}, "hedging.poll_interval"),
        ({"ST0X_HEDGING_POLL_INTERVAL": "nan"}, "hedging.poll_interval"),
        ({"ST0X_ENGINE_BATCH_SIZE": "99999999999999999999999"}, "engine.batch_size"),
        ({"ST0X_ENGINE_BATCH_SIZE": "1.5"}, "engine.batch_size"),
    ],
)
def test_the_environment_is_bounded_too(env: dict[str, str], key: str) -> None:
    refused(BASE, key, env)


@attrs.frozen
class PluginSection:
    timeout: float = 1.0
    count: int = 1


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"timeout": Decimal("1e400")}, "x.timeout: out of range"),
        ({"timeout": MAX_FLOAT * 2}, "x.timeout: out of range"),
        ({"timeout": Decimal("-Infinity")}, "x.timeout: expected a finite number"),
        ({"count": MAX_INT + 1}, "x.count: out of range"),
        ({"count": "3"}, "x.count: expected an integer, got '3' (write it without quotes)"),
    ],
)
def test_plugin_numbers_are_bounded_without_their_own_validator(
    table: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        structure(table, PluginSection, "x")
    assert str(info.value).startswith(expected), str(info.value)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("[hedging]\npoll_interval = 1e400", "hedging.poll_interval: out of range"),
        ("[hedging]\npoll_interval = inf", "hedging.poll_interval: expected a finite number"),
        ("[hedging]\npoll_interval = nan", "hedging.poll_interval: expected a finite number"),
        ('[engine]\nbatch_size = "500"', "engine.batch_size: expected an integer, got '500'"),
        ("[engine]\nbatch_size = true", "engine.batch_size: expected an integer"),
        ('[engine]\nexit_when_source_ends = "false"', "engine.exit_when_source_ends: expected"),
        ("[engine]\ndrain_timeout = 1e10", "engine.drain_timeout: out of range"),
        ("[engine]\ndrain_timeout = 86401", "engine.drain_timeout: must be at most 86400"),
    ],
)
def test_cli_refuses_with_one_line_and_status_2(tmp_path: Path, table: str, expected: str) -> None:
    text = (
        'database_url = "x.db"\n[source]\ntype = "replay"\npath = "f"\n'
        '[broker]\ntype = "dry-run"\n' + table + "\n"
    )
    tomllib.loads(text)  # the file itself is valid TOML
    path = tmp_path / "c.toml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: " + expected), result.stderr

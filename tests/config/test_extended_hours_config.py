"""``[extended_hours]`` and the dry-run broker's session keys: validated, one clear line each."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from st0x_liquidity.config import parse_config
from st0x_liquidity.errors import ConfigError
from st0x_liquidity.plugins import load_registry

REGISTRY = load_registry()
BASE: dict[str, Any] = {
    "database_url": "x.db",
    "source": {"type": "replay", "path": "f.jsonl"},
    "broker": {"type": "dry-run"},
}


def parse(**sections: Any) -> Any:
    return parse_config({**BASE, **sections}, REGISTRY, env={})


def test_off_by_default_with_finite_defaults() -> None:
    cfg = parse().extended_hours
    assert not cfg.enabled and cfg.symbols == {}
    assert (cfg.offset_bps, cfg.close_flatten_max_offset_bps, cfg.max_loss_bps) == (50, 200, 300)
    assert (cfg.reprice_timeout, cfg.close_flatten_reprice_timeout) == (300.0, 60.0)


def test_symbols_opt_in_with_overnight_separate() -> None:
    cfg = parse(
        extended_hours={"symbols": {"AAPL": {"overnight": True}, "TSLA": {"offset_bps": 80}}}
    ).extended_hours
    assert cfg.enabled and cfg.symbols["AAPL"].overnight and not cfg.symbols["TSLA"].overnight
    assert (cfg.offset_for("TSLA"), cfg.offset_for("AAPL")) == (Decimal(80), Decimal(50))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"symbols": {"tAAPL": {}}}, "extended_hours.symbols: 'tAAPL' is not a base ticker"),
        (
            {"symbols": {"AAPL": {"overnite": True}}},
            "extended_hours.symbols.AAPL.overnite: unknown key",
        ),
        ({"offset_bps": 6000}, "extended_hours.offset_bps: must be between 0 and 5000"),
        ({"offset_bps": "NaN"}, "extended_hours.offset_bps: value must be finite"),
        ({"reprice_timeout": 0}, "extended_hours.reprice_timeout: must be positive"),
        (
            {"offset_bps": 300},
            "extended_hours.close_flatten_max_offset_bps: must be at least offset_bps (300)",
        ),
        (
            {"close_flatten_reprice_timeout": 600},
            "extended_hours.close_flatten_reprice_timeout: must be at most reprice_timeout",
        ),
        (
            {"symbols": {"AAPL": {"offset_bps": 400}}, "close_flatten_max_offset_bps": 400},
            "extended_hours.max_loss_bps: must be at least every offset (400)",
        ),
        ({"calendar_days": 1}, "extended_hours.calendar_days: must be between 2 and 366"),
    ],
)
def test_bad_values_name_their_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(extended_hours=section)
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ({"clock_start": "tomorrow"}, "broker.clock_start: must be an ISO 8601 time"),
        ({"clock_start": "2026-03-03T17:00:00"}, "broker.clock_start: must name its UTC offset"),
        ({"holidays": ["2026-13-01"]}, "broker.holidays: must hold YYYY-MM-DD dates"),
        ({"limit_partial_fraction": "2"}, "broker.limit_partial_fraction: must be between 0 and 1"),
    ],
)
def test_dry_run_session_keys_are_checked(broker: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(broker={"type": "dry-run", "sessions": True, **broker})
    assert str(caught.value).startswith(message), str(caught.value)


# -- anything an operator could write: parsed, or one clear line naming the key ------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KEYS = (
    "offset_bps",
    "reprice_timeout",
    "close_flatten_window",
    "close_flatten_max_offset_bps",
    "close_flatten_reprice_timeout",
    "max_loss_bps",
    "calendar_days",
    "calendar_refresh",
    "check_interval",
    "no_such_key",
)
VALUES = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["50", "-1", "1e400", "NaN", "inf", "0x10", " 5 ", "", "5 bps"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3),
    st.one_of(
        st.none(),
        st.dictionaries(st.sampled_from(["overnight", "offset_bps", "x"]), VALUES, max_size=2),
        VALUES,
    ),
    st.booleans(),
)
def test_any_value_parses_or_fails_with_one_line(
    section: dict[str, Any], symbol: Any, as_table: bool
) -> None:
    if symbol is not None:
        section = {**section, "symbols": {"AAPL": symbol} if as_table else symbol}
    try:
        cfg = parse(extended_hours=section).extended_hours
    except ConfigError as exc:
        text = str(exc)
        assert "\n" not in text and text.startswith("extended_hours."), text
        return
    for bps in (cfg.offset_bps, cfg.close_flatten_max_offset_bps, cfg.max_loss_bps):
        assert bps.is_finite() and 0 <= bps <= 5000
    for seconds in (cfg.reprice_timeout, cfg.close_flatten_reprice_timeout, cfg.check_interval):
        assert 0 < seconds <= 86400
    assert 0 <= cfg.close_flatten_window <= 86400
    for own in cfg.symbols.values():
        assert isinstance(own.overnight, bool)
        assert own.offset_bps is None or 0 <= own.offset_bps <= 5000

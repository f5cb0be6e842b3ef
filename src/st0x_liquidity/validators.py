"""attrs validators for config sections, shared by the core and by plugins.

A config error reaches the operator as one line naming the key (see
:class:`~st0x_liquidity.errors.ConfigError`), so each validator says what the
key must be. ``not value > 0`` rather than ``value <= 0`` so that a NaN is
refused too. Plugins use these instead of writing their own.
"""

from __future__ import annotations

from decimal import InvalidOperation
from typing import Any

import attrs


def _holds(check: Any, value: Any) -> bool:
    """Decimal NaN raises on ordering comparisons; treat it as failing the check."""
    try:
        return bool(check(value))
    except (InvalidOperation, TypeError):
        return False


def positive(_instance: object, attr: attrs.Attribute[Any], value: Any) -> None:
    if not _holds(lambda v: v > 0, value):
        raise ValueError(f"{attr.name} must be positive")


def non_negative(_instance: object, attr: attrs.Attribute[Any], value: Any) -> None:
    if not _holds(lambda v: v >= 0, value):
        raise ValueError(f"{attr.name} must not be negative")


def at_least_one(_instance: object, attr: attrs.Attribute[Any], value: int) -> None:
    if not _holds(lambda v: v >= 1, value):
        raise ValueError(f"{attr.name} must be at least 1")


def http_url(_instance: object, attr: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError(f"{attr.name} must be an http(s) URL, got {value!r}")

"""attrs validators for config sections: public API, shared by the core and by plugins.

A config error reaches the operator as one line naming the key (see
:class:`~st0x_liquidity.errors.ConfigError`), so each validator's message starts
with the field's name and says what the key must be: ``poll_interval must be at
most 3600`` is printed as ``config error: hedging.poll_interval: must be at most
3600``. ``not value > 0`` rather than ``value <= 0`` so that a NaN is refused
too. Plugins use these instead of writing their own (docs/plugins.md)::

    from st0x_liquidity.validators import at_most, non_negative

    timeout: float = attrs.field(default=10.0, validator=[non_negative, at_most(3600)])

Import them from ``st0x_liquidity.validators``; the names in ``__all__`` are the
public API and keep their meaning across releases. ``base_ticker_keys`` is not in
it: the core's own, for its per-symbol tables (``[risk.symbols]``,
``[extended_hours.symbols]``, ``starting_positions``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import InvalidOperation
from typing import Any

import attrs

from .domain.symbols import InvalidSymbolError, Symbol

__all__ = [
    "Validator",
    "at_least_one",
    "at_most",
    "between",
    "http_url",
    "non_negative",
    "positive",
]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
"""What ``attrs.field(validator=...)`` takes: ``(instance, attribute, value) -> None``."""


def _holds(check: Any, value: Any) -> bool:
    """Decimal NaN raises on ordering comparisons; treat it as failing the check."""
    try:
        return bool(check(value))
    except (InvalidOperation, TypeError):
        return False


def _text(limit: int | float) -> str:
    return str(limit) if isinstance(limit, int) else f"{limit:g}"


def positive(_instance: object, attr: attrs.Attribute[Any], value: Any) -> None:
    """More than zero (NaN is refused)."""
    if not _holds(lambda v: v > 0, value):
        raise ValueError(f"{attr.name} must be positive")


def non_negative(_instance: object, attr: attrs.Attribute[Any], value: Any) -> None:
    """Zero or more (NaN is refused)."""
    if not _holds(lambda v: v >= 0, value):
        raise ValueError(f"{attr.name} must not be negative")


def at_least_one(_instance: object, attr: attrs.Attribute[Any], value: int) -> None:
    """One or more (for counts)."""
    if not _holds(lambda v: v >= 1, value):
        raise ValueError(f"{attr.name} must be at least 1")


def at_most(limit: int | float) -> Validator:
    """At most ``limit`` (NaN and infinity are refused). ``None`` passes, for optional keys."""

    def check(_instance: object, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not _holds(lambda v: v <= limit, value):
            raise ValueError(f"{attr.name} must be at most {_text(limit)}, got {value}")

    return check


def between(low: int | float, high: int | float) -> Validator:
    """From ``low`` to ``high``, both included (NaN is refused). ``None`` passes."""

    def check(_instance: object, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not _holds(lambda v: low <= v <= high, value):
            raise ValueError(
                f"{attr.name} must be between {_text(low)} and {_text(high)}, got {value}"
            )

    return check


def http_url(_instance: object, attr: attrs.Attribute[Any], value: str) -> None:
    """Text starting with ``https://`` or ``http://``."""
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError(f"{attr.name} must be an http(s) URL, got {value!r}")


def base_ticker_keys(
    _instance: object, attr: attrs.Attribute[Any], value: Mapping[str, Any]
) -> None:
    """Every key a base ticker as the symbol parser reads it (``AAPL``, not ``tAAPL``)."""
    for key in value:
        try:
            ok = Symbol.parse(key).ticker == key
        except InvalidSymbolError:
            ok = False
        if not ok:
            raise ValueError(
                f"{attr.name} {key!r} is not a base ticker (write e.g. AAPL, not tAAPL)"
            )

"""Exact decimal arithmetic for money and quantities.

Every quantity and price is a :class:`decimal.Decimal`. Python's default context
silently rounds to 28 significant digits; 18-decimal token amounts of large
positions would round without anyone noticing, so arithmetic that must be exact
runs under :data:`EXACT`, which raises instead of rounding.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

EXACT = decimal.Context(
    prec=80,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.Inexact, decimal.Overflow, decimal.InvalidOperation, decimal.DivisionByZero],
)
"""Context for sums and differences that must never round."""

WIDE = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)
"""Context for divisions (prices) where a rounded 80-digit result is acceptable."""

ZERO = Decimal(0)


class NotADecimalError(ValueError):
    """A value that should be an exact decimal number is not one."""


def to_decimal(value: Any, *, what: str = "value") -> Decimal:
    """Parse ``value`` into a finite Decimal, refusing floats.

    Floats are refused even when they look harmless: ``0.1`` as a float is not
    0.1, and a price or quantity must come from text or integers.
    """
    if isinstance(value, bool):
        raise NotADecimalError(f"{what} must be a decimal number, got a boolean")
    if isinstance(value, float):
        raise NotADecimalError(f"{what} must be given as a string or integer, not a float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = Decimal(text)
        except decimal.InvalidOperation:
            raise NotADecimalError(f"{what} is not a decimal number: {value!r}") from None
    else:
        raise NotADecimalError(f"{what} must be a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise NotADecimalError(f"{what} must be finite, got {value!r}")
    return result


def fmt(value: Decimal) -> str:
    """Canonical text for a Decimal: no exponent, no trailing zeros, ``0`` for zero.

    The store compares and indexes these strings, and rebuilt views must match
    incrementally written ones byte for byte, so there is exactly one spelling.
    """
    if not value:
        return "0"
    text = str(value)  # no exponent for most values, and cheaper than format()
    if "E" in text:
        text = format(value, "f")
    # str() never ends a number with ".", so only a trailing "0" after a point
    # needs stripping: most values skip both calls (fmt runs ~4 times a fill).
    if text[-1] == "0" and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def add(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.add(a, b)


def sub(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.subtract(a, b)


def mul(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.multiply(a, b)


def round_down(value: Decimal, places: int) -> Decimal:
    """Truncate toward zero to ``places`` decimal places (never rounds up)."""
    quantum = Decimal(1).scaleb(-places)
    return value.quantize(quantum, rounding=decimal.ROUND_DOWN, context=WIDE)

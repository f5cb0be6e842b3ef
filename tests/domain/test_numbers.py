"""The store's one spelling of a Decimal (``fmt``): views compare these strings."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.domain.numbers import fmt


def _reference(value: Decimal) -> str:
    """The definition: fixed-point, no trailing zeros, one zero."""
    if value.is_zero():
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_fmt_is_fixed_point_without_trailing_zeros(value: Decimal) -> None:
    assert fmt(value) == _reference(value)


@given(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-40, max_value=40),
)
def test_fmt_of_any_exponent(coefficient: int, exponent: int) -> None:
    value = Decimal(coefficient).scaleb(exponent)
    assert fmt(value) == _reference(value)
    assert "E" not in fmt(value) and "e" not in fmt(value)
    assert Decimal(fmt(value)) == value


def test_fmt_examples() -> None:
    cases = {"0": "0", "-0.000": "0", "1.500": "1.5", "1E+2": "100", "1E-7": "0.0000001"}
    for text, expected in cases.items():
        assert fmt(Decimal(text)) == expected

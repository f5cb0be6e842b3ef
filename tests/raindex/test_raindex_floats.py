"""rain Float <-> Decimal: the published worked examples, and exact round trips."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.raindex.floats import (
    COEFFICIENT_MAX,
    COEFFICIENT_MIN,
    EXPONENT_MAX,
    EXPONENT_MIN,
    FloatError,
    decimal_to_float,
    float_parts,
    float_to_decimal,
    from_fixed_decimal,
    pack_float,
    scale_units,
)

VECTORS = [
    ("00" * 32, 0, 0, "0"),
    ("00" * 31 + "01", 1, 0, "1"),
    ("ffffffff" + "00" * 27 + "05", 5, -1, "0.5"),
    ("fffffffc" + "00" * 27 + "01", 1, -4, "0.0001"),
    ("00000009" + "00" * 27 + "01", 1, 9, "1000000000"),
    (
        "ffffffee00000000000000000000000000000000000000001bc16d674ec80000",
        2000000000000000000,
        -18,
        "2",
    ),
    (
        "ffffffe500000000000000000000000000000002057d2cd516a29b6174400000",
        160155077520000000000000000000,
        -27,
        "160.15507752",
    ),
    ("fffffffa000000000000000000000000000000000000000000000000000f4240", 1000000, -6, "1"),
    ("fffffffeffffffffffffffffffffffffffffffffffffffffffffffffffffff1f", -225, -2, "-2.25"),
    (
        "ffffffbe19cfc6ef4f44cf88f14500d013df534fcaad48fca1d5ca47bea26fcc",
        2718281828459045235360287471352662497757247093699959574966967627724,
        -66,
        "2.718281828459045235360287471352662497757247093699959574966967627724",
    ),
    (
        "7fffffff7fffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        (1 << 223) - 1,
        (1 << 31) - 1,
        None,
    ),
    ("80000000" + "00" * 27 + "01", 1, -(1 << 31), None),
    ("80000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff", -1, -(1 << 31), None),
    (
        "7fffffff80000000000000000000000000000000000000000000000000000000",
        -(1 << 223),
        (1 << 31) - 1,
        None,
    ),
    ("ffffffff" + "00" * 28, 0, -1, "0"),
]


@pytest.mark.parametrize(("word", "coefficient", "exponent", "value"), VECTORS)
def test_published_vectors(word: str, coefficient: int, exponent: int, value: str | None) -> None:
    raw = bytes.fromhex(word)
    assert float_parts(raw) == (coefficient, exponent)
    decoded = float_to_decimal(raw)
    expected = Decimal(f"{coefficient}E{exponent}") if value is None else Decimal(value)
    assert decoded == expected
    if coefficient:
        assert decoded.as_tuple().exponent == exponent  # exact, not re-normalized


def test_extremes_are_exact() -> None:
    big = float_to_decimal(bytes.fromhex(VECTORS[10][0]))
    assert big == Decimal(f"{(1 << 223) - 1}E{(1 << 31) - 1}")
    assert big.as_tuple().exponent == (1 << 31) - 1
    tiny = float_to_decimal(bytes.fromhex(VECTORS[11][0]))
    assert tiny > 0 and tiny.as_tuple().exponent == -(1 << 31)


def test_wrong_length_is_an_error() -> None:
    with pytest.raises(FloatError):
        float_to_decimal(b"\x00" * 31)


def test_base_units_scale_exactly() -> None:
    assert scale_units(1_500_000, 6) == Decimal("1.5")
    assert scale_units(10**18 + 1, 18) == Decimal("1.000000000000000001")
    assert float_to_decimal(from_fixed_decimal(1_000_000, 6)) == Decimal(1)
    assert from_fixed_decimal(1_000_000, 6).hex() == VECTORS[7][0]


@given(
    st.integers(COEFFICIENT_MIN, COEFFICIENT_MAX),
    st.integers(EXPONENT_MIN, EXPONENT_MAX),
)
def test_pack_unpack_round_trip(coefficient: int, exponent: int) -> None:
    word = pack_float(coefficient, exponent)
    assert float_parts(word) == (coefficient, exponent)
    value = float_to_decimal(word)
    if coefficient:
        assert decimal_to_float(value) == word
        sign, digits, exp = value.as_tuple()
        assert (-1 if sign else 1) * int("".join(map(str, digits))) == coefficient
        assert exp == exponent


@given(st.binary(min_size=32, max_size=32))
def test_any_word_decodes(word: bytes) -> None:
    value = float_to_decimal(word)
    assert value.is_finite()
    coefficient, exponent = float_parts(word)
    assert value == Decimal(f"{coefficient}E{exponent}")

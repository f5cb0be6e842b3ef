"""The rain ``Float``: one bytes32 word = int224 coefficient × 10^int32 exponent.

Layout (rain.math.float, 224/32 packing): the top 32 bits are the signed
exponent, the low 224 bits the signed coefficient, both two's complement.
Decoding builds the ``Decimal`` from its digit tuple, which is exact whatever
the context precision; nothing goes through ``float``.
"""

from __future__ import annotations

from decimal import Decimal

MASK_224 = (1 << 224) - 1
MASK_32 = (1 << 32) - 1
COEFFICIENT_MIN = -(1 << 223)
COEFFICIENT_MAX = (1 << 223) - 1
EXPONENT_MIN = -(1 << 31)
EXPONENT_MAX = (1 << 31) - 1


class FloatError(ValueError):
    """A word that is not a rain Float, or a value that has no Float encoding."""


def float_parts(word: bytes) -> tuple[int, int]:
    """(coefficient, exponent) of a 32-byte Float word."""
    if not isinstance(word, bytes | bytearray) or len(word) != 32:
        raise FloatError(f"a rain Float is exactly 32 bytes, got {len(word)!r}")
    value = int.from_bytes(word, "big")
    coefficient = value & MASK_224
    if coefficient >> 223:
        coefficient -= 1 << 224
    exponent = value >> 224
    if exponent >> 31:
        exponent -= 1 << 32
    return coefficient, exponent


def float_to_decimal(word: bytes) -> Decimal:
    """The exact value of a Float word. Zero is returned as ``Decimal(0)``."""
    coefficient, exponent = float_parts(word)
    if coefficient == 0:
        return Decimal(0)
    # Decimal's string constructor is exact (no context rounding) and faster than a digit tuple.
    return Decimal(f"{coefficient}E{exponent}")


def pack_float(coefficient: int, exponent: int) -> bytes:
    """Pack an explicit (coefficient, exponent) pair (the library's ``packLossless``)."""
    if not COEFFICIENT_MIN <= coefficient <= COEFFICIENT_MAX:
        raise FloatError(f"coefficient {coefficient} does not fit int224")
    if not EXPONENT_MIN <= exponent <= EXPONENT_MAX:
        raise FloatError(f"exponent {exponent} does not fit int32")
    return ((coefficient & MASK_224) | ((exponent & MASK_32) << 224)).to_bytes(32, "big")


def decimal_to_float(value: Decimal) -> bytes:
    """Encode a finite Decimal exactly (its own coefficient and exponent, not normalized)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise FloatError(f"only finite Decimals have a Float encoding, got {value!r}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)) or "0")
    return pack_float(-coefficient if sign else coefficient, exponent)


def from_fixed_decimal(amount: int, decimals: int) -> bytes:
    """A base-unit integer (ERC-20 amount) as a Float: ``amount × 10^-decimals``."""
    return pack_float(amount, -decimals)


def scale_units(amount: int, decimals: int) -> Decimal:
    """An integer ERC-20 amount in base units as an exact Decimal in token units."""
    if decimals < 0:
        raise FloatError(f"decimals must not be negative, got {decimals}")
    if amount == 0:
        return Decimal(0)
    digits = tuple(int(d) for d in str(abs(amount)))
    return Decimal((1 if amount < 0 else 0, digits, -decimals))

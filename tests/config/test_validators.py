"""The shared config validators: one clear line naming the key, NaN refused."""

from __future__ import annotations

import re
from decimal import Decimal

import attrs
import pytest

from st0x_liquidity.validators import (
    at_least_one,
    at_most,
    between,
    http_url,
    non_negative,
    positive,
)


@attrs.frozen
class Section:
    timeout: float = attrs.field(default=1.0, validator=positive)
    floor: Decimal = attrs.field(default=Decimal(0), validator=non_negative)
    attempts: int = attrs.field(default=1, validator=at_least_one)
    url: str = attrs.field(default="https://example.test", validator=http_url)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timeout": 0}, "timeout must be positive"),
        ({"timeout": float("nan")}, "timeout must be positive"),
        ({"floor": Decimal("-0.01")}, "floor must not be negative"),
        ({"floor": Decimal("NaN")}, "floor must not be negative"),
        ({"attempts": 0}, "attempts must be at least 1"),
        ({"url": "ftp://x"}, "url must be an http(s) URL, got 'ftp://x'"),
    ],
)
def test_refused_with_the_key_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Section(**changes)  # type: ignore[arg-type]


def test_accepted_values() -> None:
    section = Section(timeout=0.001, floor=Decimal(0), attempts=3, url="http://127.0.0.1:1")
    assert section.attempts == 3


@attrs.frozen
class Bounded:
    wait: float = attrs.field(default=1.0, validator=at_most(3600))
    share: Decimal | None = attrs.field(default=None, validator=between(0, 1))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"wait": 3600.5}, "wait must be at most 3600, got 3600.5"),
        ({"wait": float("inf")}, "wait must be at most 3600, got inf"),
        ({"wait": float("nan")}, "wait must be at most 3600, got nan"),
        ({"share": Decimal("1.01")}, "share must be between 0 and 1, got 1.01"),
        ({"share": Decimal("NaN")}, "share must be between 0 and 1, got NaN"),
        ({"share": Decimal("-1")}, "share must be between 0 and 1, got -1"),
    ],
)
def test_bounds_name_the_key(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Bounded(**changes)  # type: ignore[arg-type]


def test_bounds_are_inclusive_and_let_none_pass() -> None:
    assert Bounded(wait=3600, share=Decimal(1)).share == 1
    assert Bounded(wait=0, share=None).share is None

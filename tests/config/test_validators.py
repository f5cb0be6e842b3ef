"""The shared config validators: one clear line naming the key, NaN refused."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from st0x_liquidity.validators import at_least_one, http_url, non_negative, positive


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

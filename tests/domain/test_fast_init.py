"""Constructors that skip attrs' __init__ build the same objects, and refuse classes they cannot."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import attrs
import pytest
from support.fills import fill

from st0x_liquidity.domain.accumulator import Netting, _new_netting
from st0x_liquidity.domain.events import (
    FillRecorded,
    NewEvent,
    StoredEvent,
    new_event,
    new_fill_recorded,
    new_stored_event,
)
from st0x_liquidity.domain.fast_init import positional


def test_the_hot_path_constructors_build_what_the_classes_build() -> None:
    f, g = fill(1, "tAAPL", "BUY", "1.5"), fill(2, "tAAPL", "SELL", "0.5")
    netting = Netting(f.trade_id, g.trade_id, Decimal("0.5"))
    event = FillRecorded(g, (netting,))
    now = datetime.now(UTC)
    pairs = [
        (_new_netting(f.trade_id, g.trade_id, Decimal("0.5")), netting),
        (new_fill_recorded(g, (netting,)), event),
        (
            new_event("Position", "AAPL", event, {"source": "s"}),
            NewEvent("Position", "AAPL", event, {"source": "s"}),
        ),
        (
            new_stored_event("Position", "AAPL", 3, event, {}, now),
            StoredEvent("Position", "AAPL", 3, event, {}, now),
        ),
    ]
    for fast, plain in pairs:
        assert type(fast) is type(plain)
        assert fast == plain
        if plain.__hash__ is not None and not isinstance(plain, NewEvent | StoredEvent):
            assert hash(fast) == hash(plain)  # the events hold a metadata dict: unhashable
        assert repr(fast) == repr(plain)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            fast.__setattr__(attrs.fields(type(plain))[0].name, None)


def _positive(_inst: object, _attr: object, value: int) -> None:
    if value <= 0:
        raise ValueError(value)


@attrs.frozen
class _Validated:
    a: int = attrs.field(validator=_positive)


@attrs.frozen
class _Converted:
    a: int = attrs.field(converter=int)


@attrs.frozen
class _Hooked:
    a: int

    def __attrs_post_init__(self) -> None:
        pass


@attrs.frozen(cache_hash=True)
class _CachedHash:
    a: int


@attrs.frozen(slots=False)
class _Dict:
    a: int


@attrs.frozen
class _Derived:
    a: int
    b: int = attrs.field(init=False, default=0)


class _Plain:
    a: int


@pytest.mark.parametrize(
    "cls", [_Validated, _Converted, _Hooked, _CachedHash, _Dict, _Derived, _Plain]
)
def test_a_class_whose_init_does_more_is_refused(cls: type) -> None:
    with pytest.raises(TypeError):
        positional(cls)

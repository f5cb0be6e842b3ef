"""Onchain fills as the maker sees them."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from decimal import Decimal

import attrs

from .numbers import ZERO
from .symbols import Symbol

_TX_HASH = re.compile(r"^0x[0-9a-f]{64}$")


class Direction(enum.Enum):
    """A trade's side from the maker's point of view (onchain) or ours (broker)."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Direction:
        return Direction.SELL if self is Direction.BUY else Direction.BUY

    @property
    def sign(self) -> int:
        return 1 if self is Direction.BUY else -1


class InvalidFillError(ValueError):
    """A fill whose fields cannot describe a real trade."""


def _normalise_hash(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidFillError(f"tx_hash must be text, got {type(value).__name__}")
    text = value.strip().lower()
    if not _TX_HASH.match(text):
        raise InvalidFillError(f"tx_hash must be 0x followed by 64 hex digits, got {value!r}")
    return text


MAX_INDEX = 2**63 - 1
"""The largest block number or log index a fill may carry: both store backends
keep them as signed 64-bit integers, and no chain comes near it. A larger one
is bad input, skipped with its reason like any other."""


def _non_negative_index(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidFillError(f"{attr.name} must be a non-negative integer, got {value!r}")
    if value > MAX_INDEX:
        raise InvalidFillError(f"{attr.name} must be below 2^63, got {value}")


@attrs.frozen(order=True, cache_hash=True)
class TradeId:
    """Where a fill happened onchain: unique per fill, the idempotency key."""

    tx_hash: str = attrs.field(converter=_normalise_hash)
    log_index: int = attrs.field(validator=_non_negative_index)
    text: str = attrs.field(init=False, eq=False, order=False, hash=False, repr=False)
    """``0x…:N``: the engine keys its per-batch state by it."""

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "text", f"{self.tx_hash}:{self.log_index}")

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> TradeId:
        tx_hash, sep, index = text.rpartition(":")
        if not sep or not index.isdigit():
            raise InvalidFillError(f"trade id must look like 0x…:N, got {text!r}")
        return cls(tx_hash, int(index))


def _positive(_inst: object, attr: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= ZERO:
        raise InvalidFillError(f"{attr.name} must be a positive decimal, got {value!r}")


def _aware(_inst: object, attr: attrs.Attribute[datetime], value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidFillError(f"{attr.name} must be a timezone-aware datetime")


@attrs.frozen
class Fill:
    """One onchain fill of one of the maker's orders.

    ``amount`` is in shares, ``price`` in USDC per share, ``direction`` from the
    maker's side: BUY means the maker received shares (is now longer).
    """

    trade_id: TradeId
    symbol: Symbol
    direction: Direction
    amount: Decimal = attrs.field(validator=_positive)
    price: Decimal = attrs.field(validator=_positive)
    block_number: int = attrs.field(validator=_non_negative_index)
    block_timestamp: datetime = attrs.field(validator=_aware)

    @property
    def signed_amount(self) -> Decimal:
        # copy_negate is exact; unary minus rounds to the context's 28 digits.
        return self.amount if self.direction is Direction.BUY else self.amount.copy_negate()

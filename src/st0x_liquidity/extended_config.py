"""``[extended_hours]``: which symbols hedge outside regular hours, and how limits are priced.

Its own module (config.py imports it into :class:`~st0x_liquidity.config.AppConfig`)
because the section is one idea: opt-ins per symbol, the offset towards
crossing, repricing, the close-flatten ramp and the loss bound. Every value
has a finite default; docs/extended-hours.md explains each.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from .validators import at_most, base_ticker_keys, between, positive

MAX_BPS = 5000
"""No offset or loss bound may reach half the price: beyond that it is a typo."""


@attrs.frozen
class ExtendedSymbol:
    """``[extended_hours.symbols.AAPL]``: the symbol opts in to pre- and after-hours.

    ``overnight`` is a separate opt-in (the account and the symbol must allow it
    too); ``offset_bps`` overrides the section's for this symbol.
    """

    overnight: bool = False
    offset_bps: Decimal | None = attrs.field(default=None, validator=between(0, MAX_BPS))


@attrs.frozen
class ExtendedHoursConfig:
    """Hedging outside regular hours with limit orders (seconds unless named otherwise)."""

    symbols: dict[str, ExtendedSymbol] = attrs.field(factory=dict, validator=base_ticker_keys)
    offset_bps: Decimal = attrs.field(default=Decimal(50), validator=between(0, MAX_BPS))
    """Basis points the limit is moved from the reference towards crossing."""
    reprice_timeout: float = attrs.field(default=300.0, validator=[positive, at_most(86400)])
    """An unfilled limit older than this is cancelled and placed again at a fresh price."""
    close_flatten_window: float = attrs.field(default=900.0, validator=between(0, 86400))
    """Seconds before a session close followed by a weekend or holiday in which the
    offset widens linearly from ``offset_bps`` to ``close_flatten_max_offset_bps``
    (0: no close-flatten)."""
    close_flatten_max_offset_bps: Decimal = attrs.field(
        default=Decimal(200), validator=between(0, MAX_BPS)
    )
    close_flatten_reprice_timeout: float = attrs.field(
        default=60.0, validator=[positive, at_most(86400)]
    )
    max_loss_bps: Decimal = attrs.field(default=Decimal(300), validator=between(0, MAX_BPS))
    """A limit worse than the onchain fill price by more than this is not placed:
    the hedge waits, visibly, with an alert."""
    calendar_days: int = attrs.field(default=14, validator=between(2, 366))
    """Days of the broker calendar read ahead (today included)."""
    calendar_refresh: float = attrs.field(default=21600.0, validator=[positive, at_most(86400)])
    """Seconds between calendar and eligibility reads (failures retry sooner, with backoff)."""
    check_interval: float = attrs.field(default=5.0, validator=[positive, at_most(3600)])
    """Seconds between looks at the sessions: waiting hedges, repricing, the regular open."""

    def __attrs_post_init__(self) -> None:
        if self.close_flatten_max_offset_bps < self.offset_bps:
            raise ValueError(
                "close_flatten_max_offset_bps must be at least offset_bps "
                f"({self.offset_bps}), got {self.close_flatten_max_offset_bps}"
            )
        if self.close_flatten_reprice_timeout > self.reprice_timeout:
            raise ValueError(
                "close_flatten_reprice_timeout must be at most reprice_timeout "
                f"({self.reprice_timeout:g}), got {self.close_flatten_reprice_timeout:g}"
            )
        highest = max(
            [
                self.offset_bps,
                *(s.offset_bps for s in self.symbols.values() if s.offset_bps is not None),
            ]
        )
        if self.max_loss_bps < highest:
            raise ValueError(
                f"max_loss_bps must be at least every offset ({highest}), got {self.max_loss_bps}:"
                " a limit priced from the fill itself could never be placed"
            )

    def symbol(self, ticker: str) -> ExtendedSymbol | None:
        return self.symbols.get(ticker)

    def offset_for(self, ticker: str) -> Decimal:
        own = self.symbols.get(ticker)
        return own.offset_bps if own is not None and own.offset_bps is not None else self.offset_bps

    @property
    def enabled(self) -> bool:
        return bool(self.symbols)

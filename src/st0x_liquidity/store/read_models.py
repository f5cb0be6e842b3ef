"""What the rest of the code may read from the store: typed records, no SQL.

The CLI (``positions``, ``audit``), the dashboard, the P&L reporter and
rebalancing read the views and the event log through :class:`ReadModels`, so
none of them knows a table, a column order or a driver; a second backend
(PostgreSQL) implements the same protocol.

Quantities and prices are the canonical decimal strings the views store
(``DecimalText``): the CLI's and the dashboard's JSON are documented stable
interfaces that show them verbatim, and a round trip through ``Decimal``
could only change their spelling. Callers that compute convert them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

DecimalText = str
"""A quantity or price exactly as stored, e.g. ``"2.5"``: ``Decimal(text)`` is exact."""


@attrs.frozen
class PendingHedge:
    """The hedge a position is waiting on (its fields are None if the order row is missing)."""

    client_order_id: str
    side: str | None
    quantity: DecimalText | None
    filled_quantity: DecimalText | None
    state: str | None
    limit_price: DecimalText | None = None
    """Set for an extended-hours limit (with its ``session`` and ``reference_source``)."""
    session: str | None = None
    reference_source: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A market order's keeps the shape it always had; a limit's adds its fields."""
        data = attrs.asdict(self)
        if self.limit_price is None:
            for name in ("limit_price", "session", "reference_source"):
                data.pop(name)
        return data


@attrs.frozen
class PositionView:
    symbol: str
    net: DecimalText
    open_quantity: DecimalText
    last_price: DecimalText | None
    fills: int
    hedges_placed: int
    pending_hedge: PendingHedge | None
    updated_at: str


@attrs.frozen
class OpenLotView:
    """The part of one fill that is neither netted nor hedged yet."""

    symbol: str
    trade_id: str
    direction: str
    open_quantity: DecimalText


@attrs.frozen
class TradeView:
    """One onchain fill (or reorg correction) as recorded."""

    tx_hash: str
    log_index: int
    symbol: str
    direction: str
    amount: DecimalText
    price: DecimalText
    block_number: int
    block_timestamp: str
    open_quantity: DecimalText
    recorded_at: str
    corrects: str | None

    @property
    def trade_id(self) -> str:
        return f"{self.tx_hash}:{self.log_index}"

    @property
    def key(self) -> tuple[str, int]:
        return (self.tx_hash, self.log_index)


@attrs.frozen
class Link:
    """What part of a fill went where: ``kind`` is netted, reserved or hedged.

    ``counterpart`` is the other fill's trade id (netted) or the hedge's
    ``client_order_id``.
    """

    kind: str
    counterpart: str
    quantity: DecimalText


@attrs.frozen
class HedgeOrderView:
    """One hedge order; :meth:`to_json` is the shape the CLI and the dashboard share."""

    client_order_id: str
    symbol: str
    side: str
    quantity: DecimalText
    reference_price: DecimalText
    state: str
    broker_order_id: str | None
    filled_quantity: DecimalText
    average_price: DecimalText | None
    reason: str | None
    created_at: str
    updated_at: str
    order_type: str | None = None
    """``limit`` for an extended-hours hedge (the fields below set); None: market."""
    limit_price: DecimalText | None = None
    session: str | None = None
    reference_source: str | None = None
    onchain_price: DecimalText | None = None
    cancel_requested_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Market orders keep the shape they always had; limit orders add their fields."""
        data = attrs.asdict(self)
        if self.order_type is None:
            for name in LIMIT_VIEW_FIELDS:
                data.pop(name)
        return data


LIMIT_VIEW_FIELDS = (
    "order_type",
    "limit_price",
    "session",
    "reference_source",
    "onchain_price",
    "cancel_requested_at",
)


@attrs.frozen
class HedgeCoverage:
    """A fill (part) a hedge covers or holds reserved."""

    client_order_id: str
    trade_id: str
    kind: str
    quantity: DecimalText


@attrs.frozen
class OpenHedge:
    client_order_id: str
    symbol: str
    state: str
    updated_at: str


@attrs.frozen
class HedgeLatency:
    """When a fill was recorded and when the hedge covering it closed (ISO times)."""

    fill_recorded_at: str
    hedge_closed_at: str


@attrs.frozen
class LoggedEvent:
    """One event of the log at its global ``position``; ``payload`` is its JSON text.

    The payload stays text: the dashboard and the reporter fold whole logs and
    pick the few fields they need faster than a full decode would.
    """

    position: int
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: str
    recorded_at: str


@attrs.frozen
class BreakerChange:
    """One pause or resume of hedging, from the circuit breaker's history."""

    at: str
    action: str
    reason: str
    actor: str
    remote: str | None


@attrs.frozen
class TradingStateRequest:
    """One row of ``trading_state_log``: a symbol's (or ``*``: every symbol's) new state."""

    id: int
    at: str
    symbol: str
    state: str
    reason: str
    actor: str
    remote: str | None


class AuditReads(Protocol):
    """What ``positions`` and ``audit`` read."""

    async def positions(self, symbols: Sequence[str] | None = None) -> list[PositionView]:
        """Every position (or those of ``symbols``), by symbol."""
        ...

    async def open_lots(self) -> list[OpenLotView]:
        """Fills with an open part, by symbol then arrival."""
        ...

    async def trades(
        self, *, symbol: str | None = None, tx_hash: str | None = None
    ) -> list[TradeView]:
        """Fills by symbol then arrival, optionally of one symbol and/or transaction."""
        ...

    async def links(self, trades: Sequence[tuple[str, int]]) -> dict[tuple[str, int], list[Link]]:
        """The links of each ``(tx_hash, log_index)``, by kind then counterpart."""
        ...

    async def hedge_orders(self, *, symbol: str | None = None) -> list[HedgeOrderView]:
        """Hedge orders oldest first (``created_at``, then ``client_order_id``)."""
        ...

    async def last_reconciliation(self) -> LoggedEvent | None:
        """The latest ``ReconciliationChecked`` event, if any."""
        ...

    async def last_trading_state_request(self) -> int:
        """The highest ``trading_state_log`` id a ``TradingStateChanged`` event applied (0: none)."""
        ...


class PnlInputs(Protocol):
    """What the P&L reporter (and the dashboard's P&L) reads from the log."""

    async def hedge_orders(self, *, symbol: str | None = None) -> list[HedgeOrderView]:
        """Hedge orders oldest first (limit slippage: their onchain and average prices)."""
        ...

    async def trade_events(self, after: int, limit: int) -> list[LoggedEvent]:
        """``FillRecorded`` and ``HedgeClosed`` events after ``after``, in log order."""
        ...

    async def rebalancing_payloads(self, event_type: str) -> list[str]:
        """The JSON payloads of one rebalancing event type, in log order (none before
        the rebalancing log existed)."""
        ...


class DashboardReads(AuditReads, PnlInputs, Protocol):
    """What the dashboard, ``/metrics`` and ``/health`` read (it folds the P&L too)."""

    async def ping(self) -> None:
        """Raise :class:`~st0x_liquidity.errors.StoreError` when the store cannot be read."""
        ...

    async def events_after(self, position: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events after log position ``position``, in log order."""
        ...

    async def recent_trades(
        self, *, trade_ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[TradeView]:
        """Fills newest recorded first, optionally only ``trade_ids``."""
        ...

    async def recent_hedge_orders(
        self, *, client_order_ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[HedgeOrderView]:
        """Hedge orders newest first, optionally only ``client_order_ids``."""
        ...

    async def hedge_coverage(self, client_order_ids: Sequence[str]) -> list[HedgeCoverage]:
        """The reserved and hedged parts of fills these hedges hold, by fill."""
        ...

    async def open_hedge_ids(self) -> list[str]: ...

    async def open_hedges(self) -> list[OpenHedge]: ...

    async def hedge_latencies(self, client_order_id: str) -> list[HedgeLatency]:
        """Seen-to-closed times of the fills one hedge covered."""
        ...

    async def closed_hedge_latencies(self) -> list[HedgeLatency]:
        """Seen-to-closed times of every closed hedge, by closing time."""
        ...

    async def hedge_state_counts(self) -> dict[str, int]: ...

    async def skip_reason_counts(self) -> dict[str, int]: ...

    async def fill_count(self) -> int: ...

    async def last_breaker_change(self) -> BreakerChange | None: ...

    async def breaker_history(self, limit: int) -> list[BreakerChange]:
        """The latest ``limit`` pauses and resumes, newest first."""
        ...


class ReadModels(DashboardReads, Protocol):
    """Every read a consumer outside the store may make."""

"""The public contract between the engine and everything pluggable.

Plugins and embedding code program against these protocols (and the value types
re-exported from :mod:`st0x_liquidity`), never against internals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeAlias, runtime_checkable

import attrs

from .domain.events import NewEvent, StoredEvent
from .domain.fills import Fill, TradeId
from .domain.orders import (
    HedgeOrder,
    LimitOrder,
    MarketClock,
    MarketOrder,
    OrderRules,
    OrderUpdate,
)
from .domain.sessions import SymbolEligibility, TradingDay
from .domain.symbols import Symbol

Cursor: TypeAlias = Mapping[str, Any]
"""Where a source is in its input: any JSON object the source understands."""


# -- fill sources ------------------------------------------------------------------


@attrs.frozen
class FillItem:
    """A fill and the cursor just past it."""

    fill: Fill
    cursor: Cursor


@attrs.frozen
class SkippedItem:
    """Input that is not a usable fill: recorded with its reason, never fatal."""

    reason: str
    raw: str
    cursor: Cursor


@attrs.frozen
class CheckpointItem:
    """The source moved past input that held no fill (e.g. empty blocks)."""

    cursor: Cursor


@attrs.frozen
class RevertedItem:
    """A fill delivered earlier is no longer on the canonical chain (reorg).

    The engine records a ``FillReverted`` with a compensating entry; an unknown or
    already reverted trade id is recorded as skipped. If the same trade id is
    delivered again later as a :class:`FillItem`, it is reinstated.
    """

    trade_id: TradeId
    reason: str
    cursor: Cursor


SourceItem: TypeAlias = FillItem | SkippedItem | CheckpointItem | RevertedItem


@runtime_checkable
class FillSource(Protocol):
    """An at-least-once stream of fills, resumable from a durable cursor.

    ``stream(cursor)`` starts just after ``cursor`` (or from the beginning when
    None) and may repeat fills already seen: the store drops duplicates by trade
    id. The iterator ends when a finite source is exhausted; a live source runs
    until cancelled.
    """

    name: str

    def stream(self, cursor: Cursor | None) -> AsyncIterator[SourceItem]: ...

    async def close(self) -> None: ...


# -- executors ---------------------------------------------------------------------


@attrs.frozen
class Position:
    """A broker position: signed shares and their market value if known."""

    symbol: Symbol
    quantity: Decimal
    market_value: Decimal | None = None


@attrs.frozen
class Inventory:
    positions: tuple[Position, ...]
    cash: Decimal
    as_of: datetime


@runtime_checkable
class Executor(Protocol):
    """Places and tracks hedge market orders at one brokerage.

    Error contract: raise :class:`~st0x_liquidity.errors.RetryableBrokerError`
    when a call certainly had no effect, :class:`AmbiguousBrokerError` when it
    might have, :class:`FinalBrokerError` when the broker refused it.
    ``place_market_order`` must pass ``order.client_order_id`` to the broker
    where the broker supports one, so that :meth:`find_order` can find an order
    whose placement answer was lost.
    """

    name: str

    @property
    def order_rules(self) -> OrderRules: ...

    async def start(self) -> None:
        """Open sessions, check credentials. Called once before anything else."""

    async def close(self) -> None: ...

    async def place_market_order(self, order: MarketOrder) -> OrderUpdate: ...

    async def order_status(self, broker_order_id: str) -> OrderUpdate: ...

    async def find_order(self, client_order_id: str, order: HedgeOrder) -> OrderUpdate | None:
        """The broker's order for ``client_order_id``, or None if it definitely has none.

        ``order`` is the intent as recorded (a :class:`MarketOrder`, or a
        :class:`LimitOrder` for an :class:`ExtendedHoursExecutor`), for brokers
        without client order ids that must match on symbol, side, quantity and
        time instead.
        """

    async def market_clock(self) -> MarketClock: ...

    async def inventory(self) -> Inventory:
        """Positions and cash; raise NotSupportedError if the broker cannot say."""

    async def maintenance(self) -> None:
        """Long-running upkeep (token refresh); return at once if there is none."""


@runtime_checkable
class ExtendedHoursExecutor(Executor, Protocol):
    """An executor that can also hedge outside regular hours, with limit orders.

    Executors that do not implement it hedge in regular hours only, as before.
    The engine derives the sessions from :meth:`trading_days` (see
    :mod:`st0x_liquidity.domain.sessions`), never sends a market order outside
    regular hours, and reprices a limit by cancel-then-place (never amend).
    Error contract as for :class:`Executor`.
    """

    async def trading_days(self, start: date, end: date) -> list[TradingDay]:
        """The broker calendar's trading days in ``[start, end]`` (half-days included)."""

    async def eligibility(self, symbols: Sequence[Symbol]) -> dict[Symbol, SymbolEligibility]:
        """What each symbol may do outside regular hours; a symbol left out is not eligible."""

    def overnight_available(self) -> bool:
        """Whether the broker/account supports the overnight session at all (Schwab: False)."""

    async def place_limit_order(self, order: LimitOrder) -> OrderUpdate:
        """Send ``order`` (day, extended hours) with its ``client_order_id``."""

    async def cancel_order(self, broker_order_id: str) -> OrderUpdate:
        """Ask the broker to cancel; the order as it is after the request.

        It may still be live or pending cancel, or already filled. Idempotent:
        cancelling an order that already ended returns its final state.
        """

    async def position_mark(self, symbol: Symbol) -> Decimal | None:
        """The broker's mark price of ``symbol`` (Alpaca position ``current_price``), None
        if there is no position."""


# -- store -------------------------------------------------------------------------


@attrs.frozen
class OpenLot:
    trade_id: TradeId
    direction: str
    open_quantity: Decimal


@attrs.frozen
class HedgeOrderRecord:
    client_order_id: str
    symbol: Symbol
    side: str
    quantity: Decimal
    reference_price: Decimal
    state: str
    broker_order_id: str | None
    filled_quantity: Decimal
    average_price: Decimal | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    reserved: tuple[tuple[TradeId, Decimal], ...] = ()
    order_type: str = "market"
    """``market`` or ``limit`` (an extended-hours hedge; the fields below are set)."""
    limit_price: Decimal | None = None
    session: str | None = None
    reference_source: str | None = None
    onchain_price: Decimal | None = None
    submitted_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    """Set once the engine decided to cancel the order (before asking the broker)."""
    cancel_reason: str | None = None


@attrs.frozen
class PositionRecord:
    symbol: Symbol
    net: Decimal
    open_quantity: Decimal
    last_price: Decimal | None
    hedges_placed: int
    pending_hedge: str | None
    fills: int
    updated_at: datetime


@attrs.frozen
class BookSnapshot:
    """Everything the engine needs to rebuild one symbol's book on start."""

    position: PositionRecord
    lots: tuple[OpenLot, ...]
    in_flight: HedgeOrderRecord | None


@runtime_checkable
class PositionStore(Protocol):
    """Append-only event log plus the views derived from it.

    ``append`` writes a batch of events and every view row they imply in one
    transaction: either all of a fill's consequences are durable or none are.
    """

    database_id: str
    """Made with the database; part of every ``client_order_id`` (unique across databases)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]: ...

    async def verify_lease(self) -> None:
        """Raise a :class:`~st0x_liquidity.errors.StoreError` unless this process
        still holds the database's lease (the engine asks before every broker call)."""

    async def known_trade_ids(self, ids: Sequence[TradeId]) -> set[TradeId]: ...

    async def trade_corrections(self, ids: Sequence[TradeId]) -> dict[TradeId, tuple[Fill, int]]:
        """For each known trade id: the recorded fill and how many corrections
        (reverts and reinstatements) it has had; odd means currently reverted."""

    async def cursor(self, source: str) -> Cursor | None: ...

    async def books(self) -> list[BookSnapshot]: ...

    async def hedge_orders(self, *, open_only: bool = False) -> list[HedgeOrderRecord]: ...

    async def positions(self) -> list[PositionRecord]: ...

    async def events(self, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        """Events in commit order, after global position ``after``."""

    async def rebuild_views(self) -> int: ...

    async def get_blob(self, namespace: str, key: str) -> bytes | None:
        """Opaque per-plugin state (already encrypted if it is secret)."""

    async def put_blob(self, namespace: str, key: str, value: bytes) -> None: ...


# -- custody (rebalancing) ---------------------------------------------------------


@attrs.frozen
class TokenizationRequest:
    """An issuer's mint or redeem request, as the issuer reports it."""

    request_id: str
    kind: str
    """``mint`` or ``redeem``."""
    status: str
    """``pending``, ``completed`` or ``rejected``."""
    symbol: Symbol
    quantity: Decimal
    tx_hash: str | None = None
    wallet: str | None = None


@runtime_checkable
class Custodian(Protocol):
    """The issuer side of rebalancing: mint tokens from shares, find redemptions.

    Error contract as for executors: ``FinalBrokerError`` when the issuer refused
    (e.g. insufficient position), ``RetryableBrokerError`` when the call certainly
    had no effect, ``AmbiguousBrokerError`` when it might have. ``request_mint``
    must be idempotent per ``idempotency_key``: sent again with the same key it
    returns the request the first call created instead of creating another.
    """

    async def request_mint(
        self, symbol: Symbol, quantity: Decimal, wallet: str, idempotency_key: str
    ) -> TokenizationRequest: ...

    async def tokenization_request(self, request_id: str) -> TokenizationRequest | None: ...

    async def find_redemption(self, tx_hash: str) -> TokenizationRequest | None:
        """The redeem request the issuer opened for the token transfer ``tx_hash``."""

    async def close(self) -> None: ...


@attrs.frozen
class CashConversion:
    """A USD<->USDC conversion order at the broker (Alpaca: symbol ``USDCUSD``).

    ``side`` is ``buy`` (USD -> USDC) or ``sell`` (USDC -> USD); ``quantity`` is
    the USDC amount asked for, ``filled_quantity`` what was converted. ``status``
    is one of the core's order states (``pending``, ``submitted``,
    ``partially_filled``, ``filled``, ``failed``, ``cancelled``).
    """

    order_id: str
    client_order_id: str
    side: str
    status: str
    quantity: Decimal
    filled_quantity: Decimal | None = None
    filled_price: Decimal | None = None
    """USD per USDC of the fill: the conversion's slippage against 1."""
    fees: Decimal = Decimal(0)
    """USD charged by the broker for the conversion."""
    reason: str | None = None


@attrs.frozen
class WalletTransfer:
    """A crypto transfer in or out of the broker account's wallet.

    ``status`` is the broker's: ``PENDING``, ``PROCESSING``, ``COMPLETE`` or
    ``FAILED``. ``direction`` is ``INCOMING`` or ``OUTGOING``.
    """

    transfer_id: str
    direction: str
    status: str
    asset: str
    amount: Decimal
    tx_hash: str | None = None
    from_address: str | None = None
    to_address: str | None = None
    network_fee: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    created_at: str | None = None


@runtime_checkable
class UsdcCustodian(Protocol):
    """The broker side of USDC rebalancing: convert cash, move USDC in and out.

    Same error contract as :class:`Custodian`. ``convert`` must be idempotent
    per ``client_order_id`` (sent again, it returns the order the first call
    made). Withdrawals carry no idempotency key at the broker, so a caller that
    does not know whether one was created looks for it in :meth:`transfers`
    before asking again.

    A custodian may also offer ``cancel_conversion`` (see
    :class:`ConversionCanceller`); it is optional, so it is not a member here:
    the runtime asks ``isinstance(custodian, ConversionCanceller)`` and, without
    it, leaves a conversion past its deadline open (and says so).
    """

    async def convert(self, side: str, quantity: Decimal, client_order_id: str) -> CashConversion:
        """Place a USD<->USDC market conversion."""

    async def conversion(self, client_order_id: str) -> CashConversion | None:
        """The conversion placed with ``client_order_id``, or None if there is none."""

    async def whitelist_status(self, address: str) -> str | None:
        """``APPROVED``, ``PENDING`` or ``REJECTED`` for USDC to ``address``; None if absent."""

    async def withdraw_usdc(self, amount: Decimal, address: str) -> WalletTransfer:
        """Send ``amount`` USDC from the broker wallet to ``address`` (whitelisted)."""

    async def transfers(self) -> list[WalletTransfer]:
        """Every wallet transfer of the account, newest first."""

    async def deposit_address(self) -> str:
        """The account's USDC deposit address on Ethereum."""

    async def close(self) -> None: ...


@runtime_checkable
class ConversionCanceller(Protocol):
    """The optional part of a :class:`UsdcCustodian`: cancel a conversion still open.

    ``cancel_conversion`` asks the broker to cancel the conversion placed with
    ``client_order_id`` and returns the order as it stands afterwards (read
    again, so a fill that beat the cancel shows as ``filled`` or, partly, as
    ``cancelled`` with a ``filled_quantity``), or None if there is no such
    order. An order that already ended is returned unchanged; a broker that
    refuses the cancel because the order is no longer cancelable is not an
    error (the order is read and returned). Safe to call again.
    """

    async def cancel_conversion(self, client_order_id: str) -> CashConversion | None:
        """Cancel the conversion ``client_order_id`` if it is open; its state afterwards."""

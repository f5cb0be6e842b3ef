"""Inventory across venues (pure domain: no I/O).

Per asset (a base ticker such as ``AAPL``, or ``USDC``) the bot holds a balance
**onchain** (the owner's Raindex vault plus the market-maker wallet) and
**offchain** (the broker position, or cash for USDC), each split into
``available`` and ``inflight``.

Every change is an additive delta carried by an event: fills and hedge fills
(read from the core event log), operation steps (``Moved``) and snapshot
corrections (``DriftDetected``, observed minus expected). Because every change
is additive, folding the two logs in any interleaving gives the same book: the
bot, the CLI in another process and a rebuild after a restart all agree.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import attrs

from ..domain.events import (
    FillRecorded,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    StoredEvent,
)
from ..domain.fills import Fill
from ..domain.numbers import EXACT, ZERO
from .events import (
    DriftDetected,
    Moved,
    OperationEnded,
    OperationRequested,
    RebalancingEvent,
    SnapshotTaken,
    VaultDiscovered,
)

USDC = "USDC"


class Venue(enum.Enum):
    ONCHAIN = "onchain"
    OFFCHAIN = "offchain"


class MoveKind(enum.Enum):
    """How an operation step moves an amount within one venue."""

    RESERVE = "reserve"  # available -> inflight (before an effect that takes it away)
    RELEASE = "release"  # inflight -> available (arrived, or handed back after a failure)
    SETTLE = "settle"  # inflight -> gone (left this venue)
    ARRIVE = "arrive"  # -> inflight (arrived at this venue, not usable yet)
    CREDIT = "credit"  # -> available
    DEBIT = "debit"  # available -> gone (a cost paid from the venue's balance)


@attrs.frozen
class Balance:
    available: Decimal = ZERO
    inflight: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return EXACT.add(self.available, self.inflight)

    def moved(self, kind: MoveKind, quantity: Decimal) -> Balance:
        a, i = self.available, self.inflight
        if kind is MoveKind.RESERVE:
            a, i = EXACT.subtract(a, quantity), EXACT.add(i, quantity)
        elif kind is MoveKind.RELEASE:
            a, i = EXACT.add(a, quantity), EXACT.subtract(i, quantity)
        elif kind is MoveKind.SETTLE:
            i = EXACT.subtract(i, quantity)
        elif kind is MoveKind.ARRIVE:
            i = EXACT.add(i, quantity)
        elif kind is MoveKind.DEBIT:
            a = EXACT.subtract(a, quantity)
        else:
            a = EXACT.add(a, quantity)
        return Balance(a, i)

    def plus_available(self, delta: Decimal) -> Balance:
        return Balance(EXACT.add(self.available, delta), self.inflight)


@attrs.frozen
class AssetInventory:
    asset: str
    onchain: Balance = Balance()
    offchain: Balance = Balance()
    vault: Decimal | None = None
    wallet: Decimal | None = None
    active_operation: str | None = None
    last_operation_end: datetime | None = None
    hedge_pending: bool = False
    """A hedge order of this symbol is in flight: its broker fill will move the balance."""

    def venue(self, venue: Venue) -> Balance:
        return self.onchain if venue is Venue.ONCHAIN else self.offchain

    def with_venue(self, venue: Venue, balance: Balance) -> AssetInventory:
        if venue is Venue.ONCHAIN:
            return attrs.evolve(self, onchain=balance)
        return attrs.evolve(self, offchain=balance)

    @property
    def total(self) -> Decimal:
        return EXACT.add(self.onchain.total, self.offchain.total)

    @property
    def has_inflight(self) -> bool:
        return self.onchain.inflight != ZERO or self.offchain.inflight != ZERO

    @property
    def onchain_share(self) -> Decimal | None:
        """Onchain total / total, or None when there is nothing (or a negative model)."""
        total = self.total
        if total <= ZERO:
            return None
        return self.onchain.total / total


def asset_of(aggregate_id: str) -> str:
    return aggregate_id.upper()


@attrs.define
class InventoryBook:
    """The mutable projection: fold of the core log and the rebalancing log."""

    assets: dict[str, AssetInventory] = attrs.field(factory=dict)
    core_position: int = 0
    log_position: int = 0
    vaults: dict[str, dict[tuple[str, str], str]] = attrs.field(factory=dict)
    """Discovered vaults: asset -> {(token, vault id): tx hash seen in}."""
    fill_txs: list[str] = attrs.field(factory=list)
    """Fill transactions folded since the last vault discovery took them."""
    _hedges: dict[str, tuple[Decimal, Decimal]] = attrs.field(factory=dict)

    def get(self, asset: str) -> AssetInventory:
        found = self.assets.get(asset)
        if found is None:
            found = AssetInventory(asset)
            self.assets[asset] = found
        return found

    def _add(self, asset: str, venue: Venue, delta: Decimal) -> None:
        inv = self.get(asset)
        self.assets[asset] = inv.with_venue(venue, inv.venue(venue).plus_available(delta))

    # -- core log ---------------------------------------------------------------------

    def apply_core(self, position: int, stored: StoredEvent) -> None:
        self.core_position = max(self.core_position, position)
        event = stored.event
        # A reorg correction (FillReverted / FillReinstated) carries its compensating
        # entry as a Fill: it moves the onchain balance exactly like a fill.
        entry = getattr(event, "entry", None)
        if isinstance(event, FillRecorded) or isinstance(entry, Fill):
            fill = event.fill if isinstance(event, FillRecorded) else entry
            assert isinstance(fill, Fill)
            if isinstance(event, FillRecorded):
                self.fill_txs.append(fill.trade_id.tx_hash)
            asset = asset_of(str(fill.symbol))
            sign = Decimal(fill.direction.sign)
            self._add(asset, Venue.ONCHAIN, EXACT.multiply(sign, fill.amount))
            cash = EXACT.multiply(fill.amount, fill.price)
            self._add(USDC, Venue.ONCHAIN, EXACT.multiply(-sign, cash))
        elif isinstance(event, HedgeIntended):
            asset = asset_of(stored.aggregate_id)
            self.assets[asset] = attrs.evolve(self.get(asset), hedge_pending=True)
        elif isinstance(event, HedgeProgressed | HedgeClosed):
            asset = asset_of(stored.aggregate_id)
            if isinstance(event, HedgeClosed):
                self.assets[asset] = attrs.evolve(self.get(asset), hedge_pending=False)
            qty = event.filled_quantity
            cash = EXACT.multiply(qty, event.average_price) if event.average_price else ZERO
            prev_qty, prev_cash = self._hedges.get(event.client_order_id, (ZERO, ZERO))
            d_qty, d_cash = EXACT.subtract(qty, prev_qty), EXACT.subtract(cash, prev_cash)
            if isinstance(event, HedgeClosed):
                self._hedges.pop(event.client_order_id, None)
            else:
                self._hedges[event.client_order_id] = (qty, cash)
            sign = Decimal(event.side.sign)
            if d_qty != ZERO:
                self._add(asset, Venue.OFFCHAIN, EXACT.multiply(sign, d_qty))
            if d_cash != ZERO:
                self._add(USDC, Venue.OFFCHAIN, EXACT.multiply(-sign, d_cash))

    # -- rebalancing log --------------------------------------------------------------

    def apply_log(self, position: int, event: RebalancingEvent) -> None:
        self.log_position = max(self.log_position, position)
        if isinstance(event, Moved):
            inv = self.get(event.asset)
            venue = Venue(event.venue)
            self.assets[event.asset] = inv.with_venue(
                venue, inv.venue(venue).moved(MoveKind(event.kind), event.quantity)
            )
        elif isinstance(event, DriftDetected):
            self._add(event.asset, Venue(event.venue), event.difference)
        elif isinstance(event, VaultDiscovered):
            self.vaults.setdefault(event.asset, {})[(event.token, event.vault_id)] = event.tx_hash
        elif isinstance(event, SnapshotTaken):
            for asset in set(event.vaults) | set(event.wallets):
                self.assets[asset] = attrs.evolve(
                    self.get(asset), vault=event.vaults.get(asset), wallet=event.wallets.get(asset)
                )
        elif isinstance(event, OperationRequested):
            inv = self.get(event.asset)
            self.assets[event.asset] = attrs.evolve(inv, active_operation=event.operation_id)
        elif isinstance(event, OperationEnded):
            inv = self.get(event.asset)
            active = None if inv.active_operation == event.operation_id else inv.active_operation
            self.assets[event.asset] = attrs.evolve(
                inv, active_operation=active, last_operation_end=event.at
            )


def fold(
    core: Iterable[tuple[int, StoredEvent]],
    log: Iterable[tuple[int, int, RebalancingEvent]],
    book: InventoryBook | None = None,
) -> InventoryBook:
    """Fold both logs (``log`` items are ``(position, core_position, event)``)."""
    book = book or InventoryBook()
    for position, stored in core:
        book.apply_core(position, stored)
    for position, _core, event in log:
        book.apply_log(position, event)
    return book


def vault_for(
    asset: str, pinned: dict[str, tuple[str, str]], book: InventoryBook
) -> tuple[str, str] | str:
    """``(token, vault id)`` to deposit to / withdraw from, or why there is none."""
    if asset in pinned:
        return pinned[asset]
    found = sorted(book.vaults.get(asset, {}))
    if len(found) == 1:
        return found[0]
    if not found:
        return f"no vault known for {asset} (pin one in [rebalancing.vaults])"
    return f"{len(found)} vaults discovered for {asset}: pin one in [rebalancing.vaults]"

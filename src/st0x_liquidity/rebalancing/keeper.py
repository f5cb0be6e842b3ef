"""Keeps the inventory book current from both logs and records snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from ..domain.numbers import EXACT, ZERO
from .events import INVENTORY_STREAM, DriftDetected, RebalancingEvent, SnapshotTaken
from .inventory import InventoryBook, Venue
from .log import RebalancingLog


class InventoryKeeper:
    def __init__(self, log: RebalancingLog) -> None:
        self.log = log
        self.book = InventoryBook()

    async def refresh(self) -> InventoryBook:
        """Fold whatever both logs gained since the last refresh (rebuild on first call)."""
        while True:
            batch = await self.log.core_events(self.book.core_position)
            for position, stored in batch:
                self.book.apply_core(position, stored)
            if len(batch) < 5000:
                break
        for position, _core, _stream, event in await self.log.read(self.book.log_position):
            self.book.apply_log(position, event)
        return self.book

    async def record_snapshot(
        self,
        venue: Venue,
        observed: Mapping[str, Decimal],
        *,
        complete: bool,
        vaults: Mapping[str, Decimal] | None = None,
        wallets: Mapping[str, Decimal] | None = None,
        at: datetime | None = None,
    ) -> tuple[SnapshotTaken, list[DriftDetected]]:
        """Record what ``venue`` reported; a difference becomes a ``DriftDetected``.

        Assets with an operation or an amount in flight are skipped (their
        venue balances are moving for a known reason). With ``complete``, an
        asset the model holds at this venue but the venue did not report is
        observed as zero (e.g. a closed broker position).
        """
        book = await self.refresh()
        assets = set(observed)
        if complete:
            assets |= {a for a, inv in book.assets.items() if inv.venue(venue).total != ZERO}
        skipped: list[str] = []
        drifts: list[DriftDetected] = []
        for asset in sorted(assets):
            inv = book.get(asset)
            if inv.active_operation is not None or inv.has_inflight:
                skipped.append(asset)
                continue
            expected = inv.venue(venue).total
            seen = observed.get(asset, ZERO)
            difference = EXACT.subtract(seen, expected)
            if difference != ZERO:
                drifts.append(DriftDetected(asset, venue.value, expected, seen, difference))
        snapshot = SnapshotTaken(
            venue.value,
            dict(observed),
            tuple(skipped),
            at or datetime.now(UTC),
            vaults=dict(vaults or {}),
            wallets=dict(wallets or {}),
        )
        events: list[RebalancingEvent] = [snapshot, *drifts]
        await self.log.append(INVENTORY_STREAM, events, core_position=book.core_position)
        await self.refresh()
        return snapshot, drifts

    async def record_failed_snapshot(self, venue: Venue, error: str) -> None:
        event = SnapshotTaken(venue.value, {}, (), datetime.now(UTC), error=error)
        await self.log.append(INVENTORY_STREAM, [event], core_position=self.book.core_position)

"""The ingest pipeline: source items in, one commit per batch, hedges decided on the way.

The intake task reads the source into a bounded queue; the loop takes what is
ready (up to ``engine.batch_size``), drops fills the store already has,
applies the rest to the books, decides hedges and submits it all as one
commit. No broker call sits on this path. While a batch commits the next one
is applied; trade ids of batches not committed yet are kept in
``_uncommitted`` so a duplicate inside that window is still caught.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from ..domain.events import (
    FILL_SOURCE,
    POSITION,
    CursorCheckpointed,
    FillRecorded,
    FillReinstated,
    FillReverted,
    InputSkipped,
    NewEvent,
    StoredEvent,
    correction_id,
    position_event,
)
from ..domain.fills import Fill
from ..protocols import FillItem, RevertedItem, SkippedItem, SourceItem
from .state import EngineContext, consume, log

_END = object()
PIPELINE_DEPTH = 4
"""Batches submitted and not yet committed, at most: the engine applies the
next batch while the store commits the last ones (group commit). Orders still
go out only after the commit that carries their intents."""


class IngestPipeline:
    def __init__(self, engine: EngineContext) -> None:
        self.engine = engine
        self._uncommitted: dict[str, tuple[tuple[Fill, int], int]] = {}
        self._batches = 0

    async def intake(self, queue: asyncio.Queue[Any]) -> None:
        cursor = await self.engine.store.cursor(self.engine.source.name)
        self.engine.status.source_state = "running"
        try:
            async for item in self.engine.source.stream(cursor):
                await queue.put(item)
            self.engine.status.source_state = "ended"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.engine.status.source_state = f"failed: {exc}"
            log.error("fill source %s failed: %s", self.engine.source.name, exc)
            await queue.put(exc)
            return
        await queue.put(_END)

    async def run(self, queue: asyncio.Queue[Any]) -> None:
        batch_size = self.engine.config.engine.batch_size
        pipelined = callable(getattr(self.engine.store, "submit", None))
        in_flight: deque[asyncio.Future[list[StoredEvent]]] = deque()
        try:
            while True:
                batch: list[SourceItem] = [await queue.get()]
                while len(batch) < batch_size and not queue.empty():
                    batch.append(queue.get_nowait())
                end: Any = batch[-1]
                # _END or the source's exception is always the last item the
                # intake puts, so only a batch's last item can be one.
                if end is _END or isinstance(end, BaseException):
                    batch.pop()
                else:
                    end = None
                if batch:
                    # Batch N+1 is read, deduplicated, applied and encoded while batch
                    # N is being written; at most PIPELINE_DEPTH commits are pending.
                    in_flight.append(await self._submit(batch))
                    depth = PIPELINE_DEPTH if pipelined else 1
                    while len(in_flight) >= depth or (in_flight and in_flight[0].done()):
                        await in_flight.popleft()
                if end is _END:
                    while in_flight:
                        await in_flight.popleft()
                    return
                if isinstance(end, BaseException):
                    raise end
        finally:
            for future in in_flight:  # committed whatever happens: let the commit tasks end
                future.add_done_callback(consume)

    async def ingest_batch(self, batch: Sequence[SourceItem]) -> list[StoredEvent]:
        """Record a batch of source items and any hedges they trigger, in one commit."""
        return await (await self._submit(batch))

    async def _submit(
        self, batch: Sequence[SourceItem]
    ) -> asyncio.Future[list[StoredEvent]]:
        """Apply a batch to the books and submit its events; the future ends with the commit.

        Trade ids of batches submitted but not committed yet are not in the store's
        committed state, so their states are kept in ``_uncommitted`` and override
        what the store says (taken before the read: a batch that commits during the
        read is then in one or the other).
        """
        ids = [
            i.fill.trade_id if isinstance(i, FillItem) else i.trade_id
            for i in batch
            if isinstance(i, FillItem | RevertedItem)
        ]
        uncommitted = self._uncommitted
        pending = {t.text: uncommitted[t.text][0] for t in ids if t.text in uncommitted}
        found = await self.engine.store.trade_corrections(ids) if ids else {}
        known = {t.text: state for t, state in found.items()}
        known.update(pending)
        changed: list[str] = []  # ids whose state this batch sets
        events: list[NewEvent] = []
        touched: dict[str, None] = {}
        cursor_carried = False
        last = batch[-1] if batch else None
        for item in batch:
            if isinstance(item, FillItem):
                cursor_carried = self._fill(
                    item, known, changed, events, touched, last=item is last
                )
            elif isinstance(item, RevertedItem):
                cursor_carried = self._revert(item, known, changed, events, touched)
            elif isinstance(item, SkippedItem):
                self._skip(item, events)
                cursor_carried = True
            else:
                cursor_carried = False
        if batch and not cursor_carried:
            events.append(
                NewEvent(
                    FILL_SOURCE,
                    self.engine.source.name,
                    CursorCheckpointed(),
                    {"source": self.engine.source.name, "cursor": dict(batch[-1].cursor)},
                )
            )
        orders = self.engine.decide_many(list(touched), events)
        self._batches += 1
        number = self._batches
        for t in changed:
            uncommitted[t] = (known[t], number)
        cursor = dict(batch[-1].cursor) if batch else None

        def committed() -> None:
            for t in changed:
                if uncommitted.get(t, (None, 0))[1] == number:
                    del uncommitted[t]
            if cursor is not None:
                self.engine.status.source_cursor = cursor
            self.engine.status.last_item_at = datetime.now(UTC)
            for order in orders:
                self.engine.spawn_order(order)

        return self.engine.commit_in_background(events, committed)

    def _fill(
        self,
        item: FillItem,
        known: dict[str, tuple[Fill, int]],
        changed: list[str],
        events: list[NewEvent],
        touched: dict[str, None],
        *,
        last: bool,
    ) -> bool:
        """Apply a new fill (or reinstate a reverted one); False for a duplicate.

        Only the batch's ``last`` item's event carries the source's cursor: the
        batch commits whole, so the cursor after it is the only one a restart
        can use, and encoding one per fill cost 7 % of the engine's work. The
        fill's own trade id and block say where it came from.
        """
        fill = item.fill
        trade_id = fill.trade_id.text
        state = known.get(trade_id)
        if state is not None and state[1] % 2 == 0:
            self.engine.status.duplicates_dropped += 1
            return False
        ticker = fill.symbol.ticker
        book = self.engine.books.get(ticker) or self.engine.book(fill.symbol)
        event: FillRecorded | FillReinstated
        changed.append(trade_id)
        if state is None:
            known[trade_id] = (fill, 0)
            event = FillRecorded(fill, book.apply_fill(fill))
        else:  # reverted earlier, back on the canonical chain
            k = state[1] + 1
            entry = attrs.evolve(fill, trade_id=correction_id(fill.trade_id, k))
            known[trade_id] = (state[0], k)
            event = FillReinstated(fill.trade_id, entry, book.apply_fill(entry))
            log.warning("fill %s is back on the canonical chain: reinstated", fill.trade_id)
        metadata: dict[str, Any] = {"source": self.engine.source.name}
        if last:
            metadata["cursor"] = dict(item.cursor)
        events.append(NewEvent(POSITION, ticker, event, metadata))
        touched[ticker] = None
        self.engine.status.fills_ingested += 1
        self.engine.status.last_fill_at = fill.block_timestamp
        return True

    def _revert(
        self,
        item: RevertedItem,
        known: dict[str, tuple[Fill, int]],
        changed: list[str],
        events: list[NewEvent],
        touched: dict[str, None],
    ) -> bool:
        """Reverse a fill that left the canonical chain with a compensating entry."""
        state = known.get(item.trade_id.text)
        if state is None or state[1] % 2 == 1:
            reason = f"{item.reason} (no recorded fill to revert)"
            self._skip(SkippedItem(reason, str(item.trade_id), item.cursor), events)
            return True
        original, k = state[0], state[1] + 1
        entry = attrs.evolve(
            original,
            trade_id=correction_id(original.trade_id, k),
            direction=original.direction.opposite,
        )
        known[item.trade_id.text] = (original, k)
        changed.append(item.trade_id.text)
        book = self.engine.book(original.symbol)
        event = FillReverted(item.trade_id, entry, item.reason, book.apply_fill(entry))
        events.append(
            position_event(
                original.symbol, event, source=self.engine.source.name, cursor=dict(item.cursor)
            )
        )
        log.error("fill %s reversed: %s", item.trade_id, item.reason)
        touched[original.symbol.ticker] = None
        return True

    def _skip(self, item: SkippedItem, events: list[NewEvent]) -> None:
        source = self.engine.source.name
        log.info("skipped input from %s: %s", source, item.reason)
        events.append(
            NewEvent(
                FILL_SOURCE,
                source,
                InputSkipped(item.reason, item.raw),
                {"source": source, "cursor": dict(item.cursor)},
            )
        )
        self.engine.status.inputs_skipped += 1

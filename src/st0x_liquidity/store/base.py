"""What both store backends share: the commit queue and the engine's reads.

A backend supplies one fenced write (:meth:`EventStore._write`: a commit's
events and their view rows in one transaction), its lease, and ``fetch``
(``?`` placeholders, committed data only). The group commit, the
per-caller outcome and every read the engine makes live here once, so the
two backends cannot drift apart in what they promise.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from ..domain.events import NewEvent, StoredEvent
from ..domain.fills import Direction, Fill, TradeId
from ..domain.symbols import Symbol
from ..errors import StoreError
from ..protocols import BookSnapshot, Cursor, HedgeOrderRecord, OpenLot, PositionRecord
from .codec import event_from_json, event_to_json, metadata_to_json
from .writes import Encoded, Key

OPEN_STATES = ("pending", "submitted", "partially_filled")
_T = TypeVar("_T")
_Entry = tuple[list[NewEvent], "asyncio.Future[list[StoredEvent]]"]


class EventStore:
    """The backend-neutral half of a :class:`~st0x_liquidity.protocols.PositionStore`."""

    _EVENT_POSITION = "rowid"
    """The column that orders the event log globally (commit order)."""

    def __init__(self) -> None:
        self._queue: list[_Entry] = []
        self._committer: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._sequences: dict[Key, int] = {}
        self._epoch: int | None = None
        self.database_id = ""

    # -- what a backend provides -----------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _writable(self) -> bool:
        raise NotImplementedError

    async def _write(
        self, epoch: int, entries: list[Encoded], known: dict[Key, int]
    ) -> tuple[list[list[StoredEvent]], dict[Key, int]]:
        """One fenced transaction for ``entries``; the sequences it assigned."""
        raise NotImplementedError

    @property
    def epoch(self) -> int | None:
        """This holder's lease epoch; None without the lease."""
        return self._epoch

    def _fence(self) -> int:
        if self._epoch is None:
            raise StoreError("only the holder of the database's lease writes the event log")
        return self._epoch

    # -- writing -------------------------------------------------------------------

    def submit(self, events: Sequence[NewEvent]) -> asyncio.Future[list[StoredEvent]]:
        """Queue ``events`` for the next commit, in call order; the future ends with it."""
        future: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        if not events:
            future.set_result([])
            return future
        if not self._writable():
            raise StoreError("store is not open for writing")
        self._queue.append((list(events), future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_loop(), name="store-commit")
        return future

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Commit ``events`` and their view changes atomically; return them as stored.

        A caller cancelled while waiting still has its events committed: the
        cancellation is raised once the transaction has ended, as if the
        process had stopped right after the commit.
        """
        return await uninterrupted(self.submit(events))

    async def _commit_loop(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue, []
                async with self._write_lock:
                    await self._commit(group)
        finally:
            self._committer = None

    async def _commit(self, group: list[_Entry]) -> None:
        """One transaction for ``group``; each caller learns its outcome."""
        encoded: list[tuple[Encoded, asyncio.Future[list[StoredEvent]]]] = []
        for events, future in group:
            try:
                rows = [
                    (new, event_to_json(new.event), metadata_to_json(new.metadata))
                    for new in events
                ]
            except Exception as exc:  # a bad event fails its own caller only
                future.set_exception(StoreError(f"cannot encode events: {exc}"))
                continue
            encoded.append((rows, future))
        if not encoded:
            return
        try:
            epoch = self._fence()
            results, assigned = await self._write(
                epoch, [rows for rows, _ in encoded], dict(self._sequences)
            )
        except BaseException as exc:
            self._sequences.clear()  # read again after a rollback
            error = exc if isinstance(exc, StoreError) else StoreError(f"could not commit: {exc!r}")
            for _, future in encoded:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        self._sequences.update(assigned)
        for (_, future), stored in zip(encoded, results, strict=True):
            if not future.done():
                future.set_result(stored)
        await self._after_commit(sum(len(r) for r in results))

    async def _after_commit(self, events: int) -> None:
        """Housekeeping once a commit's callers have their answer (SQLite: checkpoints)."""

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (or failed)."""
        while self._committer is not None:
            await asyncio.wait({self._committer})

    # -- reading -------------------------------------------------------------------

    async def events(self, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        rows = await self.fetch(
            f"SELECT {self._EVENT_POSITION}, aggregate_type, aggregate_id, sequence, event_type, "
            f"payload, metadata, recorded_at FROM events WHERE {self._EVENT_POSITION} > ? "
            f"ORDER BY {self._EVENT_POSITION} LIMIT ?",
            (after, limit),
        )
        return [stored_from_row(row) for row in rows]

    async def known_trade_ids(self, ids: Sequence[TradeId]) -> set[TradeId]:
        return set(await self.trade_corrections(ids))

    async def trade_corrections(self, ids: Sequence[TradeId]) -> dict[TradeId, tuple[Fill, int]]:
        wanted = list(dict.fromkeys(ids))
        result: dict[TradeId, tuple[Fill, int]] = {}
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            values = ",".join(["(?, ?)"] * len(chunk))
            params = [v for t in chunk for v in (t.tx_hash, t.log_index)]
            rows = await self.fetch(
                "SELECT t.tx_hash, t.log_index, t.symbol, t.direction, t.amount, t.price, "
                "t.block_number, t.block_timestamp, (SELECT COUNT(*) FROM onchain_trades c "
                "WHERE c.corrects = t.tx_hash || ':' || t.log_index) "
                f"FROM (VALUES {values}) AS v JOIN onchain_trades t "
                "ON t.tx_hash = v.column1 AND t.log_index = v.column2",
                params,
            )
            for tx, idx, symbol, direction, amount, price, block, ts, corrections in rows:
                trade_id = TradeId(tx, int(idx))
                fill = Fill(
                    trade_id,
                    Symbol(symbol),
                    Direction(direction),
                    Decimal(amount),
                    Decimal(price),
                    int(block),
                    datetime.fromisoformat(ts),
                )
                result[trade_id] = (fill, int(corrections))
        return result

    async def cursor(self, source: str) -> Cursor | None:
        rows = await self.fetch("SELECT cursor FROM source_cursors WHERE source = ?", (source,))
        if not rows:
            return None
        value = json.loads(rows[0][0])
        return value if isinstance(value, dict) else None

    async def positions(self) -> list[PositionRecord]:
        rows = await self.fetch(
            "SELECT symbol, net, open_quantity, last_price, hedges_placed, pending_hedge, "
            "fills, updated_at FROM positions ORDER BY symbol"
        )
        return [
            PositionRecord(
                symbol=Symbol(r[0]),
                net=Decimal(r[1]),
                open_quantity=Decimal(r[2]),
                last_price=None if r[3] is None else Decimal(r[3]),
                hedges_placed=int(r[4]),
                pending_hedge=r[5],
                fills=int(r[6]),
                updated_at=datetime.fromisoformat(r[7]),
            )
            for r in rows
        ]

    async def hedge_orders(
        self, *, open_only: bool = False, symbol: str | None = None
    ) -> list[HedgeOrderRecord]:
        sql = (
            "SELECT client_order_id, symbol, side, quantity, reference_price, state, "
            "broker_order_id, filled_quantity, average_price, reason, created_at, updated_at, "
            "order_type, limit_price, session, reference_source, onchain_price, submitted_at, "
            "cancel_requested_at, cancel_reason FROM hedge_orders WHERE 1=1"
        )
        params: list[Any] = []
        if open_only:
            sql += " AND state IN ('pending', 'submitted', 'partially_filled')"
        if symbol is not None:
            sql += " AND symbol = ?"
            params.append(symbol)
        sql += " ORDER BY created_at, client_order_id"
        records = []
        for r in await self.fetch(sql, params):
            reserved = await self._reserved(r[0]) if r[5] in OPEN_STATES else ()
            records.append(
                HedgeOrderRecord(
                    client_order_id=r[0],
                    symbol=Symbol(r[1]),
                    side=r[2],
                    quantity=Decimal(r[3]),
                    reference_price=Decimal(r[4]),
                    state=r[5],
                    broker_order_id=r[6],
                    filled_quantity=Decimal(r[7]),
                    average_price=None if r[8] is None else Decimal(r[8]),
                    reason=r[9],
                    created_at=datetime.fromisoformat(r[10]),
                    updated_at=datetime.fromisoformat(r[11]),
                    reserved=reserved,
                    order_type=r[12] or "market",
                    limit_price=None if r[13] is None else Decimal(r[13]),
                    session=r[14],
                    reference_source=r[15],
                    onchain_price=None if r[16] is None else Decimal(r[16]),
                    submitted_at=None if r[17] is None else datetime.fromisoformat(r[17]),
                    cancel_requested_at=None if r[18] is None else datetime.fromisoformat(r[18]),
                    cancel_reason=r[19],
                )
            )
        return records

    async def _reserved(self, cid: str) -> tuple[tuple[TradeId, Decimal], ...]:
        rows = await self.fetch(
            "SELECT t.tx_hash, t.log_index, l.quantity FROM fill_allocations l "
            "JOIN onchain_trades t ON t.id = l.trade "
            "WHERE l.counterpart = ? AND l.kind = 'reserved' ORDER BY t.arrival",
            (cid,),
        )
        return tuple((TradeId(r[0], int(r[1])), Decimal(r[2])) for r in rows)

    async def books(self) -> list[BookSnapshot]:
        positions = await self.positions()
        lots: dict[str, list[OpenLot]] = {}
        for r in await self.fetch(
            "SELECT symbol, tx_hash, log_index, direction, open_quantity FROM onchain_trades "
            "WHERE open_quantity != '0' ORDER BY symbol, arrival"
        ):
            lots.setdefault(r[0], []).append(OpenLot(TradeId(r[1], int(r[2])), r[3], Decimal(r[4])))
        in_flight = {h.symbol.ticker: h for h in await self.hedge_orders(open_only=True)}
        return [
            BookSnapshot(p, tuple(lots.get(p.symbol.ticker, ())), in_flight.get(p.symbol.ticker))
            for p in positions
        ]

    async def get_blob(self, namespace: str, key: str) -> bytes | None:
        rows = await self.fetch(
            "SELECT value FROM plugin_blobs WHERE namespace = ? AND key = ?", (namespace, key)
        )
        return None if not rows else bytes(rows[0][0])


def stored_from_row(row: Sequence[object]) -> tuple[int, StoredEvent]:
    position, agg_type, agg_id, seq, event_type, payload, metadata, recorded = row
    stored = StoredEvent(
        str(agg_type),
        str(agg_id),
        int(str(seq)),
        event_from_json(str(event_type), str(payload)),
        json.loads(str(metadata)),
        datetime.fromisoformat(str(recorded)),
    )
    return int(str(position)), stored


async def uninterrupted(future: asyncio.Future[_T]) -> _T:
    """Wait for ``future`` to the end even if the caller is cancelled, then re-raise.

    A submitted write is committed whatever happens to its caller; shutdown
    cancels callers, so writes finish before they notice.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    result = future.result()
    if cancelled:
        raise asyncio.CancelledError
    return result

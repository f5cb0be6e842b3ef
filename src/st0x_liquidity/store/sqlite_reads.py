"""The read models over SQLite, on whatever read connection the caller has.

:class:`SqliteReads` needs only a ``fetch`` (``async (sql, params) -> rows``):
the store's own reader (:attr:`SqliteStore.reads`) or a connection of the
reader's own (:mod:`.read_connection`, for the dashboard). So read-only
commands read without any writer machinery, and each query is written once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..domain.events import RECONCILIATION, TRADING_STATE, FillRecorded, HedgeClosed
from ..errors import StoreError
from .links import SQLITE, Fetch, links_of
from .read_models import (
    BreakerChange,
    HedgeCoverage,
    HedgeLatency,
    HedgeOrderView,
    Link,
    LoggedEvent,
    OpenHedge,
    OpenLotView,
    PendingHedge,
    PositionView,
    TradeView,
)

OPEN_STATES = ("pending", "submitted", "partially_filled")

_HEDGE_COLUMNS = (
    "client_order_id, symbol, side, quantity, reference_price, state, broker_order_id, "
    "filled_quantity, average_price, reason, created_at, updated_at, order_type, limit_price, "
    "session, reference_source, onchain_price, cancel_requested_at"
)
_POSITIONS = (
    "SELECT p.symbol, p.net, p.open_quantity, p.last_price, p.fills, p.hedges_placed, "
    "p.pending_hedge, h.side, h.quantity, h.filled_quantity, h.state, p.updated_at, "
    "h.limit_price, h.session, h.reference_source "
    "FROM positions p LEFT JOIN hedge_orders h ON h.client_order_id = p.pending_hedge"
)
_TRADE_COLUMNS = (
    "tx_hash, log_index, symbol, direction, amount, price, block_number, "
    "block_timestamp, open_quantity, recorded_at, corrects"
)
_LATENCIES = (
    "SELECT t.recorded_at, h.updated_at FROM fill_allocations l "
    "JOIN onchain_trades t ON t.id = l.trade "
    "JOIN hedge_orders h ON h.client_order_id = l.counterpart "
    "WHERE l.kind = 'hedged' "
)
_BREAKER = "SELECT at, action, reason, actor, remote FROM circuit_breaker_log ORDER BY id DESC "


def _marks(n: int) -> str:
    return ",".join("?" for _ in range(n))


def _position(r: Sequence[Any]) -> PositionView:
    pending = None if r[6] is None else PendingHedge(r[6], *r[7:11], *r[12:15])
    return PositionView(r[0], r[1], r[2], r[3], r[4], r[5], pending, r[11])


def _trade(r: Sequence[Any]) -> TradeView:
    return TradeView(r[0], int(r[1]), *r[2:])


def _breaker(r: Sequence[Any]) -> BreakerChange:
    return BreakerChange(*r)


class SqliteReads:
    """:class:`~.read_models.ReadModels` for SQLite, on the given read connection.

    The queries are plain SQL both backends run; what SQLite spells its own way
    is in the class attributes a PostgreSQL subclass overrides.
    """

    _EVENT_POSITION = "rowid"
    """The event log's commit order."""
    _UNINDEXED = "+"
    """Prefix that keeps SQLite off an index (no affinity); nothing elsewhere."""
    _ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)
    _NO_TABLE: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
    _LINKS = SQLITE

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch

    # -- positions and audit ---------------------------------------------------------

    async def positions(self, symbols: Sequence[str] | None = None) -> list[PositionView]:
        sql = _POSITIONS
        params: list[Any] = []
        if symbols is not None:
            sql += f" WHERE p.symbol IN ({_marks(len(symbols))})"
            params.extend(symbols)
        return [_position(r) for r in await self._fetch(sql + " ORDER BY p.symbol", params)]

    async def open_lots(self) -> list[OpenLotView]:
        return [
            OpenLotView(symbol, f"{tx}:{idx}", direction, open_qty)
            for symbol, tx, idx, direction, open_qty in await self._fetch(
                "SELECT symbol, tx_hash, log_index, direction, open_quantity FROM onchain_trades "
                "WHERE open_quantity != '0' ORDER BY symbol, arrival",
                (),
            )
        ]

    async def trades(
        self, *, symbol: str | None = None, tx_hash: str | None = None
    ) -> list[TradeView]:
        where = []
        params: list[Any] = []
        if symbol:
            where.append("symbol = ?")
            params.append(symbol)
        if tx_hash:
            where.append("tx_hash = ?")
            params.append(tx_hash.lower())
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self._fetch(
            f"SELECT {_TRADE_COLUMNS} FROM onchain_trades {clause}ORDER BY symbol, arrival", params
        )
        return [_trade(r) for r in rows]

    async def links(self, trades: Sequence[tuple[str, int]]) -> dict[tuple[str, int], list[Link]]:
        found = await links_of(self._fetch, trades, dialect=self._LINKS)
        return {key: [Link(*link) for link in links] for key, links in found.items()}

    async def hedge_orders(self, *, symbol: str | None = None) -> list[HedgeOrderView]:
        rows = await self._fetch(
            f"SELECT {_HEDGE_COLUMNS} FROM hedge_orders "
            + ("WHERE symbol = ? " if symbol else "")
            + "ORDER BY created_at, client_order_id",
            [symbol] if symbol else [],
        )
        return [HedgeOrderView(*r) for r in rows]

    # -- dashboard ----------------------------------------------------------------------

    async def ping(self) -> None:
        try:
            await self._fetch("SELECT 1", ())
        except self._ERRORS as exc:
            raise StoreError(str(exc)) from exc

    async def events_after(self, position: int, limit: int) -> list[LoggedEvent]:
        at = self._EVENT_POSITION
        rows = await self._fetch(
            f"SELECT {at}, aggregate_type, aggregate_id, event_type, payload, recorded_at "
            f"FROM events WHERE {at} > ? ORDER BY {at} LIMIT ?",
            (position, limit),
        )
        return [LoggedEvent(int(r[0]), *r[1:]) for r in rows]

    async def recent_trades(
        self, *, trade_ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[TradeView]:
        if trade_ids is not None and not trade_ids:
            return []
        sql = f"SELECT {_TRADE_COLUMNS} FROM onchain_trades"
        params: list[Any] = []
        if trade_ids is not None:
            pairs = [t.rsplit(":", 1) for t in trade_ids]
            sql += f" WHERE (tx_hash, log_index) IN (VALUES {','.join('(?, ?)' for _ in pairs)})"
            for tx, idx in pairs:
                params.extend((tx, int(idx)))
        # id order (SQLite: the rowid) is the order fills were recorded in.
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_trade(r) for r in await self._fetch(sql, params)]

    async def recent_hedge_orders(
        self, *, client_order_ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[HedgeOrderView]:
        if client_order_ids is not None and not client_order_ids:
            return []
        sql = f"SELECT {_HEDGE_COLUMNS} FROM hedge_orders"
        params: list[Any] = []
        if client_order_ids is not None:
            sql += f" WHERE client_order_id IN ({_marks(len(client_order_ids))})"
            params.extend(client_order_ids)
        sql += " ORDER BY created_at DESC, client_order_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [HedgeOrderView(*r) for r in await self._fetch(sql, params)]

    async def hedge_coverage(self, client_order_ids: Sequence[str]) -> list[HedgeCoverage]:
        if not client_order_ids:
            return []
        return [
            HedgeCoverage(cid, f"{tx}:{idx}", kind, qty)
            for cid, tx, idx, kind, qty in await self._fetch(
                "SELECT l.counterpart, t.tx_hash, t.log_index, l.kind, l.quantity "
                "FROM fill_allocations l JOIN onchain_trades t ON t.id = l.trade "
                f"WHERE l.kind != 'netted' AND l.counterpart IN ({_marks(len(client_order_ids))}) "
                "ORDER BY t.tx_hash, t.log_index",
                list(client_order_ids),
            )
        ]

    async def open_hedge_ids(self) -> list[str]:
        rows = await self._fetch(
            "SELECT client_order_id FROM hedge_orders WHERE state IN (?, ?, ?)", OPEN_STATES
        )
        return [str(r[0]) for r in rows]

    async def open_hedges(self) -> list[OpenHedge]:
        rows = await self._fetch(
            "SELECT client_order_id, symbol, state, updated_at FROM hedge_orders "
            "WHERE state IN (?, ?, ?)",
            OPEN_STATES,
        )
        return [OpenHedge(*r) for r in rows]

    async def hedge_latencies(self, client_order_id: str) -> list[HedgeLatency]:
        rows = await self._fetch(_LATENCIES + "AND l.counterpart = ?", (client_order_id,))
        return [HedgeLatency(*r) for r in rows]

    async def closed_hedge_latencies(self) -> list[HedgeLatency]:
        rows = await self._fetch(
            _LATENCIES + "AND h.state IN ('filled', 'failed', 'cancelled') ORDER BY h.updated_at",
            (),
        )
        return [HedgeLatency(*r) for r in rows]

    async def hedge_state_counts(self) -> dict[str, int]:
        rows = await self._fetch("SELECT state, COUNT(*) FROM hedge_orders GROUP BY state", ())
        return {str(state): int(n) for state, n in rows}

    async def skip_reason_counts(self) -> dict[str, int]:
        rows = await self._fetch("SELECT reason, COUNT(*) FROM skipped_inputs GROUP BY reason", ())
        return {str(reason): int(n) for reason, n in rows}

    async def fill_count(self) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM onchain_trades", ())
        return int(rows[0][0]) if rows else 0

    async def last_breaker_change(self) -> BreakerChange | None:
        rows = await self._fetch(_BREAKER + "LIMIT 1", ())
        return _breaker(rows[0]) if rows else None

    async def breaker_history(self, limit: int) -> list[BreakerChange]:
        return [_breaker(r) for r in await self._fetch(_BREAKER + "LIMIT ?", (limit,))]

    # -- risk and reconciliation ------------------------------------------------------

    async def last_reconciliation(self) -> LoggedEvent | None:
        # The primary key (aggregate_type, aggregate_id, sequence) serves this.
        rows = await self._fetch(
            f"SELECT {self._EVENT_POSITION}, aggregate_type, aggregate_id, event_type, payload, "
            "recorded_at FROM events WHERE aggregate_type = ? AND aggregate_id = 'broker' "
            "ORDER BY sequence DESC LIMIT 1",
            (RECONCILIATION,),
        )
        return LoggedEvent(int(rows[0][0]), *rows[0][1:]) if rows else None

    async def last_trading_state_request(self) -> int:
        rows = await self._fetch(
            "SELECT MAX(CAST(json_extract(payload, '$.request') AS INTEGER)) FROM events "
            "WHERE aggregate_type = ?",
            (TRADING_STATE,),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    # -- P&L inputs -------------------------------------------------------------------

    async def trade_events(self, after: int, limit: int) -> list[LoggedEvent]:
        # +aggregate_type keeps SQLite on the rowid range: with the primary-key
        # index on aggregate_type it would scan and sort the whole log per chunk.
        at = self._EVENT_POSITION
        rows = await self._fetch(
            f"SELECT {at}, aggregate_type, aggregate_id, event_type, payload, recorded_at "
            f"FROM events WHERE {at} > ? AND {self._UNINDEXED}aggregate_type = 'Position' "
            f"AND event_type IN (?, ?) ORDER BY {at} LIMIT ?",
            (after, FillRecorded.TYPE, HedgeClosed.TYPE, limit),
        )
        return [LoggedEvent(int(r[0]), *r[1:]) for r in rows]

    async def rebalancing_payloads(self, event_type: str) -> list[str]:
        try:
            rows = await self._fetch(
                "SELECT payload FROM rebalancing_events WHERE event_type = ? ORDER BY position",
                (event_type,),
            )
        except self._NO_TABLE:  # a database from before the rebalancing log
            return []
        return [str(r[0]) for r in rows]

"""``trading_state_log``: every request to change a symbol's trading state.

The ``risk`` command appends to it beside a running engine (one short
transaction on a connection of its own, like the circuit breaker's log); the
engine folds it on start, follows it while running, and records each row it
applies as a ``TradingStateChanged`` event in the event log. Append-only:
triggers refuse updates and deletes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ..errors import StoreError
from .read_models import TradingStateRequest

TIMEOUT = 10.0
ALL = "*"
"""The ``symbol`` of a request for every symbol."""


class TradingStateLog:
    """``trading_state_log`` of the database at ``path``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreError(f"no database at {self.path} (has `run` been started?)")
        return sqlite3.connect(self.path, timeout=TIMEOUT)

    def append_sync(
        self, symbol: str, state: str, reason: str, actor: str, remote: str | None = None
    ) -> TradingStateRequest:
        at = datetime.now(UTC).isoformat()
        try:
            with contextlib.closing(self._connect()) as db, db:
                cursor = db.execute(
                    "INSERT INTO trading_state_log (at, symbol, state, reason, actor, remote) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (at, symbol, state, reason, actor, remote),
                )
                row_id = int(cursor.lastrowid or 0)
        except sqlite3.Error as exc:
            raise StoreError(f"could not record the trading state change: {_explain(exc)}") from exc
        return TradingStateRequest(row_id, at, symbol, state, reason, actor, remote)

    async def append(
        self, symbol: str, state: str, reason: str, actor: str, remote: str | None = None
    ) -> TradingStateRequest:
        return await asyncio.to_thread(self.append_sync, symbol, state, reason, actor, remote)

    def after_sync(self, after_id: int) -> list[TradingStateRequest]:
        try:
            with contextlib.closing(self._connect()) as db:
                rows = db.execute(
                    "SELECT id, at, symbol, state, reason, actor, remote FROM trading_state_log "
                    "WHERE id > ? ORDER BY id",
                    (after_id,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"could not read the trading state log: {_explain(exc)}") from exc
        return [TradingStateRequest(*r) for r in rows]

    async def after(self, after_id: int) -> list[TradingStateRequest]:
        return await asyncio.to_thread(self.after_sync, after_id)


def _explain(exc: sqlite3.Error) -> str:
    if "no such table" in str(exc):
        return (
            "the database is older than this program; start `run` or `rebuild-views` once "
            "to upgrade it"
        )
    return str(exc)

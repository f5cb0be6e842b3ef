"""``trading_state_log``: every request to change a symbol's trading state.

The ``risk`` command appends to it beside a running engine (one short
transaction on a connection of its own, like the circuit breaker's log); the
engine folds it on start, follows it while running, and records each row it
applies as a ``TradingStateChanged`` event in the event log. Append-only:
triggers refuse updates and deletes. On PostgreSQL it is a table of the same
database, so a request reaches whichever machine leads.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from ..errors import StoreError
from .read_models import TradingStateRequest
from .side_db import ERRORS, Where, describe, explain, is_postgres
from .side_sync import sync_transaction

ALL = "*"
"""The ``symbol`` of a request for every symbol."""


class TradingStateLog:
    """``trading_state_log`` of the database at ``where`` (a SQLite path or PostgreSQL URL)."""

    def __init__(self, where: Where) -> None:
        self.where = where

    def _check(self) -> None:
        if not is_postgres(self.where) and not Path(self.where).exists():
            raise StoreError(f"no database at {self.where} (has `run` been started?)")

    def append_sync(
        self, symbol: str, state: str, reason: str, actor: str, remote: str | None = None
    ) -> TradingStateRequest:
        at = datetime.now(UTC).isoformat()
        self._check()
        try:
            with sync_transaction(self.where) as db:
                rows = db.fetch(
                    "INSERT INTO trading_state_log (at, symbol, state, reason, actor, remote) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (at, symbol, state, reason, actor, remote),
                )
        except ERRORS as exc:
            raise StoreError(
                f"could not record the trading state change in {describe(self.where)}: "
                f"{self._explain(exc)}"
            ) from exc
        return TradingStateRequest(int(rows[0][0]), at, symbol, state, reason, actor, remote)

    async def append(
        self, symbol: str, state: str, reason: str, actor: str, remote: str | None = None
    ) -> TradingStateRequest:
        return await asyncio.to_thread(self.append_sync, symbol, state, reason, actor, remote)

    def after_sync(self, after_id: int) -> list[TradingStateRequest]:
        self._check()
        try:
            with sync_transaction(self.where) as db:
                rows = db.fetch(
                    "SELECT id, at, symbol, state, reason, actor, remote FROM trading_state_log "
                    "WHERE id > ? ORDER BY id",
                    (after_id,),
                )
        except ERRORS as exc:
            raise StoreError(
                f"could not read the trading state log of {describe(self.where)}: "
                f"{self._explain(exc)}"
            ) from exc
        return [TradingStateRequest(int(r[0]), *r[1:]) for r in rows]

    async def after(self, after_id: int) -> list[TradingStateRequest]:
        return await asyncio.to_thread(self.after_sync, after_id)

    def _explain(self, exc: BaseException) -> str:
        text = explain(self.where, exc)
        if "no such table" in text or ("trading_state_log" in text and "does not exist" in text):
            return (
                "the database is older than this program; start `run` or `rebuild-views` once "
                "to upgrade it"
            )
        return text

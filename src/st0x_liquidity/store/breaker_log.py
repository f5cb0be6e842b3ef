"""The circuit breaker's own table: every pause and resume of hedging.

The dashboard appends to it beside a running engine, so each change is one
short transaction on a connection of its own that touches this table only
(append-only: triggers refuse updates and deletes). The engine's event
streams get the same change as a ``CircuitBreakerChanged`` event through the
store; this table is the history the page shows and what a restart re-applies
(on PostgreSQL, whichever machine the restart happens on).
"""

from __future__ import annotations

import asyncio

from ..errors import StoreError
from .read_models import BreakerChange
from .side_db import ERRORS, Where, explain
from .side_sync import sync_transaction


class BreakerLog:
    """``circuit_breaker_log`` of the database at ``where`` (a SQLite path or PostgreSQL URL)."""

    def __init__(self, where: Where) -> None:
        self.where = where

    def last_change(self) -> BreakerChange | None:
        """The latest change, read synchronously (start-up, before the loop runs)."""
        try:
            with sync_transaction(self.where) as db:
                rows = db.fetch(
                    "SELECT at, action, reason, actor, remote FROM circuit_breaker_log "
                    "ORDER BY id DESC LIMIT 1"
                )
        except ERRORS as exc:
            raise StoreError(
                f"could not read the circuit breaker log: {explain(self.where, exc)}"
            ) from exc
        return BreakerChange(*rows[0]) if rows else None

    async def append(self, change: BreakerChange) -> None:
        await asyncio.to_thread(self._append, change)

    def _append(self, change: BreakerChange) -> None:
        try:
            with sync_transaction(self.where) as db:
                db.fetch(
                    "INSERT INTO circuit_breaker_log (at, action, reason, actor, remote) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (change.at, change.action, change.reason, change.actor, change.remote),
                )
        except ERRORS as exc:
            raise StoreError(
                f"could not record the circuit breaker change: {explain(self.where, exc)}"
            ) from exc

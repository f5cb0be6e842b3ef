"""The circuit breaker's own table: every pause and resume of hedging.

The dashboard appends to it beside a running engine, so each change is one
short transaction on a connection of its own that touches this table only
(append-only: triggers refuse updates and deletes). The engine's event
streams get the same change as a ``CircuitBreakerChanged`` event through the
store; this table is the history the page shows and what a restart re-applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from ..errors import StoreError
from .read_models import BreakerChange

TIMEOUT = 10.0


class BreakerLog:
    """``circuit_breaker_log`` of the database at ``path``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def last_change(self) -> BreakerChange | None:
        """The latest change, read synchronously (start-up, before the loop runs)."""
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=TIMEOUT)) as db:
                row = db.execute(
                    "SELECT at, action, reason, actor, remote FROM circuit_breaker_log "
                    "ORDER BY id DESC LIMIT 1"
                ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"could not read the circuit breaker log: {exc}") from exc
        return None if row is None else BreakerChange(*row)

    async def append(self, change: BreakerChange) -> None:
        await asyncio.to_thread(self._append, change)

    def _append(self, change: BreakerChange) -> None:
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=TIMEOUT)) as db, db:
                db.execute(
                    "INSERT INTO circuit_breaker_log (at, action, reason, actor, remote) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (change.at, change.action, change.reason, change.actor, change.remote),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"could not record the circuit breaker change: {exc}") from exc

"""The PostgreSQL store's view of the database going away and coming back.

A restarted server (or a cut network) drops every connection. The lease
holder's store does not give up: it keeps its callers waiting, tries a new
connection after a capped, jittered backoff, and carries on once the server
answers (:class:`~.postgres.PostgresStore`). :class:`Outage` is what it
knows meanwhile, for ``/health`` and ``/metrics``, and what it logs: one
warning when the database stops answering, one line when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from ..backoff import backoff_delay

log = logging.getLogger(__name__)

BASE_DELAY = 0.1
MAX_DELAY = 2.0
"""Seconds between attempts grow from 0.1 to at most 2 (with jitter)."""


def broken(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """The connection can serve nothing more (the server went away or it was closed)."""
    return bool(conn.closed or conn.broken)


def shut(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Shut a connection's socket under libpq: whatever waits on it fails at once.

    Closing would not do: another thread or task may be inside libpq on it.
    """
    with contextlib.suppress(OSError, psycopg.Error, ValueError):
        fd = conn.pgconn.socket
        dup = socket.socket(fileno=os.dup(fd))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


def discard(conn: psycopg.Connection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error, OSError):
            conn.close()


class Outage:
    """Whether the database answered the store's last attempt, and since when not."""

    def __init__(self) -> None:
        self.detail: str | None = None
        """Why the database does not answer; None while it does."""
        self.since: datetime | None = None
        self._started = 0.0
        self.count = 0
        """Outages so far (this process)."""
        self._rng = random.Random()

    @property
    def up_now(self) -> bool:
        return self.detail is None

    def down(self, detail: str) -> None:
        if self.detail is None:
            self.count += 1
            self.since = datetime.now(UTC)
            self._started = time.monotonic()
            log.warning("%s; the store waits for it and retries", detail)
        self.detail = detail

    def up(self, name: str, dropped: str) -> None:
        """A new connection answered. Without an outage the server had only dropped the
        old one (a session ended under it): one line at info."""
        if self.detail is not None:
            log.warning(
                "%s answers again after %.1fs; carrying on", name, time.monotonic() - self._started
            )
        else:
            log.info("%s; a new connection answered at once", dropped)
        self.detail = None
        self.since = None

    async def pause(self, attempt: int) -> None:
        await asyncio.sleep(backoff_delay(attempt, BASE_DELAY, MAX_DELAY, self._rng))

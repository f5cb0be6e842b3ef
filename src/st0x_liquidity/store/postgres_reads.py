"""The read models over PostgreSQL: :class:`SqliteReads`' queries, PostgreSQL's spellings.

The queries are written once (``?`` placeholders; ``fetch`` translates).
Only what SQLite spells its own way differs: the log's order is the
``position`` column (SQLite's rowid), no ``+`` index hints, a fill's id
compared with ``fill_allocations.counterpart`` as text, and psycopg's errors.
"""

from __future__ import annotations

import psycopg
import psycopg.errors

from ..domain.events import TRADING_STATE
from .links import POSTGRES
from .sqlite_reads import SqliteReads


class PostgresReads(SqliteReads):
    """:class:`~.read_models.ReadModels` for PostgreSQL, on the given read connection."""

    _EVENT_POSITION = "position"
    _UNINDEXED = ""
    _ERRORS = (psycopg.Error,)
    _NO_TABLE = (psycopg.errors.UndefinedTable,)
    _LINKS = POSTGRES

    async def last_trading_state_request(self) -> int:
        rows = await self._fetch(
            "SELECT MAX((payload::jsonb ->> 'request')::bigint) FROM events "
            "WHERE aggregate_type = ?",
            (TRADING_STATE,),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

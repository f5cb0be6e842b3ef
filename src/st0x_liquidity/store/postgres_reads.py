"""The read models over PostgreSQL: :class:`SqliteReads`' queries, PostgreSQL's spellings.

The queries are written once (``?`` placeholders; ``fetch`` translates).
Only what SQLite spells its own way differs: the log's order is the
``position`` column (SQLite's rowid), no ``+`` index hints, a fill's id
compared with ``fill_allocations.counterpart`` as text, and psycopg's errors.
"""

from __future__ import annotations

import psycopg
import psycopg.errors

from .links import POSTGRES
from .sqlite_reads import SqliteReads


class PostgresReads(SqliteReads):
    """:class:`~.read_models.ReadModels` for PostgreSQL, on the given read connection."""

    _EVENT_POSITION = "position"
    _UNINDEXED = ""
    _ERRORS = (psycopg.Error,)
    _NO_TABLE = (psycopg.errors.UndefinedTable,)
    _LINKS = POSTGRES

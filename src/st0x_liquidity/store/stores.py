"""Which store backend a database location means: a SQLite file or a PostgreSQL URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .side_db import Where, is_postgres, require_driver
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore


def store_at(
    where: Where, *, lease: bool = True, read_only: bool = False
) -> SqliteStore | PostgresStore:
    """The store for ``where`` (not opened yet)."""
    if is_postgres(where):
        require_driver()
        from .postgres import PostgresStore

        return PostgresStore(str(where), lease=lease, read_only=read_only)
    return SqliteStore(Path(where), lease=lease, read_only=read_only)

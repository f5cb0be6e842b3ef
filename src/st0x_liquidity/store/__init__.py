"""Event store adapters. SQLite (through aiosqlite) is the embedded default."""

from .sqlite import SqliteStore

__all__ = ["SqliteStore"]

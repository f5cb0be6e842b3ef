"""Read every view table, to compare two stores or a store before and after a rebuild."""

from __future__ import annotations

from typing import Any

from st0x_liquidity.store.schema import VIEW_TABLES


async def columns(store: Any, table: str) -> list[str]:
    """A table's columns in declared order, on either backend."""
    if hasattr(store, "path"):  # SQLite
        return [str(r[1]) for r in await store.fetch(f"PRAGMA table_info({table})")]
    rows = await store.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in rows]


async def dump(store: Any, *, times: bool = True) -> dict[str, list[tuple[object, ...]]]:
    """Every view row (sorted in Python, so both backends compare); without the
    commit-time columns if ``times`` is False.

    Two stores fed the same events commit at different times, so they compare
    without them.
    """
    out = {}
    for table in VIEW_TABLES:
        kept = ", ".join(c for c in await columns(store, table) if times or not c.endswith("_at"))
        rows = await store.fetch(f"SELECT {kept} FROM {table}")
        out[table] = sorted((tuple(r) for r in rows), key=lambda r: [(v is not None, str(v)) for v in r])
    return out

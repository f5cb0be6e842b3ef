"""Read every view table, to compare two stores or a store before and after a rebuild."""

from __future__ import annotations

from st0x_liquidity.store.schema import VIEW_TABLES
from st0x_liquidity.store.sqlite import SqliteStore


async def dump(store: SqliteStore, *, times: bool = True) -> dict[str, list[tuple[object, ...]]]:
    """Every view row; without the commit-time columns if ``times`` is False.

    Two stores fed the same events commit at different times, so they compare
    without them.
    """
    out = {}
    for table in VIEW_TABLES:
        columns = [r[1] for r in await store.fetch(f"PRAGMA table_info({table})")]
        kept = ", ".join(c for c in columns if times or not c.endswith("_at"))
        out[table] = await store.fetch(f"SELECT {kept} FROM {table} ORDER BY {kept}")
    return out

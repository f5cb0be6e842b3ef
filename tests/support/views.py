"""Read every view table, to compare two stores or a store before and after a rebuild."""

from __future__ import annotations

from st0x_liquidity.store.schema import VIEW_TABLES
from st0x_liquidity.store.sqlite import SqliteStore


async def dump(store: SqliteStore) -> dict[str, list[tuple[object, ...]]]:
    return {t: await store.fetch(f"SELECT * FROM {t} ORDER BY 1, 2, 3") for t in VIEW_TABLES}

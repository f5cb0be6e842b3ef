"""Read what each fill was netted against and which hedges cover it.

``fill_allocations`` keeps a netting once, on the side of the fill that
arrived and netted (half the rows and index entries of storing both sides:
the ingestion path writes one row per netting), and names fills by their
``onchain_trades.id``. Readers want both sides and text ids, so the links of a
fill are its own rows plus the netting rows naming it as counterpart, joined
back to ``onchain_trades``. The ``fill_links`` SQL view shows the same for
ad-hoc queries; this reads the tables through their indexes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from ..domain.numbers import add, fmt

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]
Link = tuple[str, str, str]
"""``(kind, counterpart, quantity)``; kind is netted, reserved or hedged."""

_CHUNK = 400


class LinkSql(NamedTuple):
    """How a backend compares ``fill_allocations.counterpart`` with a fill's id."""

    fill_named_by: str
    """Look the fill up by the counterpart (``{} = a.counterpart``)."""
    counterpart_of: str
    """Look the counterpart up by the fill (``a.counterpart = …``, on its index)."""


SQLITE = LinkSql("{}", "+{}")
"""SQLite: the id's affinity applies to the counterpart (the primary key serves
the lookup); ``+`` drops it so the counterpart index serves the other way."""
POSTGRES = LinkSql("{}::text", "{}::text")


async def links_of(
    fetch: Fetch, trades: Sequence[tuple[str, int]], *, dialect: LinkSql = SQLITE
) -> dict[tuple[str, int], list[Link]]:
    """The links of each ``(tx_hash, log_index)``, ordered by kind then counterpart.

    A pair of fills that netted in both directions (possible after a hedge
    gives back reserved shares) has one link each way summed into one.
    """
    sums: dict[tuple[str, int], dict[tuple[str, str], Decimal]] = {}

    def note(key: tuple[str, int], kind: str, other: str, quantity: str) -> None:
        per = sums.setdefault(key, {})
        per[(kind, other)] = add(per.get((kind, other), Decimal(0)), Decimal(quantity))

    wanted = list(dict.fromkeys((str(tx), int(idx)) for tx, idx in trades))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        params: list[Any] = [value for key in chunk for value in key]
        wanted_sql = (
            "WITH wanted(tx_hash, log_index) AS (VALUES " + ",".join("(?, ?)" for _ in chunk) + ") "
        )
        for tx, idx, kind, other, quantity in await fetch(
            wanted_sql + "SELECT t.tx_hash, t.log_index, a.kind, "
            "CASE WHEN a.kind = 'netted' THEN c.tx_hash || ':' || c.log_index "
            "ELSE a.counterpart END, a.quantity "
            "FROM wanted w JOIN onchain_trades t "
            "ON t.tx_hash = w.tx_hash AND t.log_index = w.log_index "
            "JOIN fill_allocations a ON a.trade = t.id "
            "LEFT JOIN onchain_trades c ON a.kind = 'netted' "
            f"AND {dialect.fill_named_by.format('c.id')} = a.counterpart",
            params,
        ):
            note((tx, int(idx)), kind, other, quantity)
        # The nettings that name these fills as the older side. +t.id has no
        # affinity, so the counterpart index serves the join.
        for tx, idx, other_tx, other_idx, quantity in await fetch(
            wanted_sql + "SELECT t.tx_hash, t.log_index, o.tx_hash, o.log_index, a.quantity "
            "FROM wanted w JOIN onchain_trades t "
            "ON t.tx_hash = w.tx_hash AND t.log_index = w.log_index "
            f"JOIN fill_allocations a ON a.counterpart = {dialect.counterpart_of.format('t.id')} "
            "AND a.kind = 'netted' "
            "JOIN onchain_trades o ON o.id = a.trade",
            params,
        ):
            note((tx, int(idx)), "netted", f"{other_tx}:{other_idx}", quantity)
    return {
        key: [(kind, other, fmt(q)) for (kind, other), q in sorted(per.items()) if q]
        for key, per in sums.items()
    }

"""Read what each fill was netted against and which hedges cover it.

``fill_allocations`` keeps a netting once, on the side of the fill that
arrived and netted (half the rows and index entries of storing both sides:
the ingestion path writes one row per netting). Readers want both sides, so
the links of a fill are its own rows plus the netting rows naming it as
counterpart. The ``fill_links`` SQL view shows the same for ad-hoc queries;
this reads the table through its indexes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from ..domain.numbers import add, fmt

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]
Link = tuple[str, str, str]
"""``(kind, counterpart, quantity)``; kind is netted, reserved or hedged."""

_CHUNK = 400


async def links_of(
    fetch: Fetch, trades: Sequence[tuple[str, int]]
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
        for tx, idx, kind, other, quantity in await fetch(
            "SELECT tx_hash, log_index, kind, counterpart, quantity FROM fill_allocations "
            "WHERE (tx_hash, log_index) IN (SELECT column1, column2 FROM (VALUES "
            + ",".join("(?, ?)" for _ in chunk)
            + "))",
            params,
        ):
            note((tx, int(idx)), kind, other, quantity)
        texts = {f"{tx}:{idx}": (tx, idx) for tx, idx in chunk}
        for other_tx, other_idx, counterpart, quantity in await fetch(
            "SELECT tx_hash, log_index, counterpart, quantity FROM fill_allocations "
            "WHERE kind = 'netted' AND counterpart IN (" + ",".join("?" * len(texts)) + ")",
            list(texts),
        ):
            note(texts[counterpart], "netted", f"{other_tx}:{other_idx}", quantity)
    return {
        key: [(kind, other, fmt(q)) for (kind, other), q in sorted(per.items()) if q]
        for key, per in sums.items()
    }

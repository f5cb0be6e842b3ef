"""The one line ``run`` logs every minute and at exit: what an operator tails for."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from .domain.accumulator import SymbolBook
from .domain.numbers import ZERO
from .engine.state import EngineStatus
from .tables import money


def unhedged_usd(books: Iterable[SymbolBook]) -> Decimal:
    """Σ |net| × last onchain price over the symbols (a symbol with no price counts 0)."""
    total = ZERO
    for book in books:
        if book.last_price is not None:
            total += abs(book.net) * book.last_price
    return total


def summary_line(status: EngineStatus, books: Iterable[SymbolBook]) -> str:
    books = list(books)
    open_symbols = sum(1 for b in books if b.net)
    return (
        f"fills {status.fills_ingested} (duplicates {status.duplicates_dropped}, "
        f"skipped {status.inputs_skipped}); hedges placed {status.hedges_placed}, "
        f"filled {status.hedges_filled}, failed {status.hedges_failed}; "
        f"unhedged {money(unhedged_usd(books))} USD over {open_symbols} symbol(s)"
        + (f"; paused: {status.paused}" if status.paused else "")
    )

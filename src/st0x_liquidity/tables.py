"""Text tables for the command line: money to cents, columns as wide as their widest cell.

Only the text output rounds; ``--json`` keeps every digit (the store's exact
decimals). Rounding is half-even (the same on every platform and for every
sign), and ``-0.00`` is printed ``0.00``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation


def money(value: str | Decimal | None, places: int = 2) -> str:
    """``"1234.5678901234567890123456"`` -> ``"1234.57"``; ``None`` -> ``"-"``.

    ``places`` for per-share figures finer than a cent (an average spread)."""
    if value is None:
        return "-"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    try:
        rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # more digits than the context holds: show it as it is
        return str(value)
    return f"{rounded if rounded else abs(rounded):f}"  # never "-0.00"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, left: int = 1) -> str:
    """Lines of ``header`` and ``rows``; the first ``left`` columns are left-aligned, the
    rest (numbers) right-aligned, each as wide as its widest cell."""
    cells = [[str(c) for c in header], *[["-" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)

"""One row of the ``hedge_orders`` view as the JSON the CLI and the dashboard share.

The audit command and the dashboard both show hedge orders with the fills
they cover; reading the columns in one place keeps the two outputs (both
documented as stable JSON) from drifting apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HEDGE_ORDER_FIELDS = (
    "client_order_id",
    "symbol",
    "side",
    "quantity",
    "reference_price",
    "state",
    "broker_order_id",
    "filled_quantity",
    "average_price",
    "reason",
    "created_at",
    "updated_at",
)
HEDGE_ORDER_COLUMNS = ", ".join(HEDGE_ORDER_FIELDS)
"""For ``SELECT {HEDGE_ORDER_COLUMNS} FROM hedge_orders``."""


def hedge_order_json(row: Sequence[Any]) -> dict[str, Any]:
    """A row selected with :data:`HEDGE_ORDER_COLUMNS`, keyed by column name."""
    return dict(zip(HEDGE_ORDER_FIELDS, row, strict=True))

"""What rebalancing cost: the ``CostRecorded`` events of the rebalancing log, summed.

USDC moves lose a little on the way (conversion slippage and fees at the broker,
the broker's withdrawal fees, Circle's CCTP fee); each operation records its
items when it ends. The P&L summary shows their total beside realized P&L, so
the figure an operator reads is what market making earned after keeping the
inventory in place.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import attrs

from ..domain.numbers import EXACT, ZERO, fmt
from ..rebalancing.events import CostRecorded, from_payload
from ..store.read_models import PnlInputs


@attrs.frozen
class RebalancingCost:
    total: Decimal = ZERO
    items: dict[str, Decimal] = attrs.field(factory=dict)
    operations: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "total": fmt(self.total),
            "items": {k: fmt(v) for k, v in sorted(self.items.items())},
            "operations": self.operations,
        }


def sum_costs(events: list[CostRecorded]) -> RebalancingCost:
    """Per item and in total (an operation recorded twice counts once: the last wins)."""
    last = {e.operation_id: e for e in events}
    items: dict[str, Decimal] = {}
    for event in last.values():
        for item, amount in event.costs.items():
            items[item] = EXACT.add(items.get(item, ZERO), amount)
    total = ZERO
    for amount in items.values():
        total = EXACT.add(total, amount)
    return RebalancingCost(total, items, len(last))


async def read_costs(reads: PnlInputs) -> RebalancingCost:
    """Sum the log's ``CostRecorded`` events (nothing when there is no rebalancing log)."""
    payloads = await reads.rebalancing_payloads(CostRecorded.TYPE)
    events = [from_payload(CostRecorded.TYPE, json.loads(p)) for p in payloads]
    return sum_costs([e for e in events if isinstance(e, CostRecorded)])

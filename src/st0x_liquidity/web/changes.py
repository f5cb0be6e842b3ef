"""What a batch of the event log changed on the page, and the messages that say so.

The dashboard follows the log in batches (``DashboardState.catch_up``). Rather
than shape a message per event, it notes the ids each event touched (fills,
hedges, symbols), reads those rows once per batch, and sends each changed row
once: a burst of events costs one read per kind, not one per event. Noting and
assembling are pure; the reads in between are the façade's.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ..store.read_models import LoggedEvent


@attrs.define
class Changes:
    """The ids a batch touched, each once, in the order first seen."""

    fills: dict[str, None] = attrs.field(factory=dict)
    hedges: dict[str, None] = attrs.field(factory=dict)
    symbols: dict[str, None] = attrs.field(factory=dict)
    skipped: list[dict[str, Any]] = attrs.field(factory=list)
    """One item per ``InputSkipped`` (the page lists each)."""
    closed: list[str] = attrs.field(factory=list)
    """Client order ids of the hedges that closed (their latencies are new)."""

    def note(self, event: LoggedEvent) -> None:
        """Note the ids of what ``event`` changed, read straight from the payload's JSON."""
        position, agg_type, agg_id = event.position, event.aggregate_type, event.aggregate_id
        event_type, recorded = event.event_type, event.recorded_at
        data = json.loads(event.payload)
        if agg_type != "Position":
            if event_type == "InputSkipped":
                self.skipped.append(
                    {
                        "source": agg_id,
                        "reason": data.get("reason"),
                        "at": recorded,
                        "seq": position,
                    }
                )
            return
        self.symbols[str(agg_id)] = None
        cid = data.get("client_order_id")
        if cid is not None:
            self.hedges[str(cid)] = None
        if event_type == "FillRecorded":
            self.fills[str(data["fill"]["trade_id"])] = None
        elif event_type == "HedgeClosed":
            self.closed.append(str(cid))
        for key in ("reserved", "hedged", "released"):
            for alloc in data.get(key) or ():
                self.fills[str(alloc["trade_id"])] = None
        for netting in data.get("nettings") or ():
            self.fills[str(netting["older"])] = None
            self.fills[str(netting["newer"])] = None


def batch_messages(
    seq: int,
    *,
    fills: list[dict[str, Any]],
    hedges: list[dict[str, Any]],
    slippage_pnl: dict[str, Any] | None,
    positions: list[dict[str, Any]],
    pnl: dict[str, Any] | None,
    latency: dict[str, Any] | None,
    skipped: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The WebSocket messages of one batch, in the order the page applies them.

    ``slippage_pnl`` is the P&L update sent when only the limit slippage changed,
    ``pnl`` the one carrying the batch's new curve points; every message but a
    skipped input's carries the batch's last log position as ``seq``.
    """
    messages: list[dict[str, Any]] = []
    messages.extend({"type": "fill", "seq": seq, "data": f} for f in fills)
    messages.extend({"type": "hedge", "seq": seq, "data": h} for h in hedges)
    if slippage_pnl is not None:
        messages.append({"type": "pnl", "seq": seq, "data": slippage_pnl})
    messages.extend({"type": "position", "seq": seq, "data": p} for p in positions)
    if pnl is not None:
        messages.append({"type": "pnl", "seq": seq, "data": pnl})
    if latency is not None:
        messages.append({"type": "latency", "seq": seq, "data": latency})
    messages.extend({"type": "skipped", "seq": item["seq"], "data": item} for item in skipped)
    return messages

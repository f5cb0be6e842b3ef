"""Where the raindex walk is, and what it remembers of recent blocks to notice a reorg.

The walk's position is plain data: the next block to read, the hashes of the blocks
it read, the fills it handed over (by trade id, with their block) and the fills a
reorg took off the chain that still await their report. Keeping the bookkeeping
here, without the node, makes every move of the cursor a pure step that a restart
(the window is kept in the store as JSON) reproduces exactly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import attrs

from .. import protocols
from ..domain.fills import TradeId
from ..protocols import Cursor, SkippedItem, SourceItem

log = logging.getLogger("st0x_liquidity.raindex.source")
"""The source's logger: its lines keep the one name operators filter on."""

WINDOW_NS = "raindex.window"
REVERTED_NS = "raindex.reverted"


@attrs.define
class WalkState:
    """Where the walk is, and what it remembers of recent blocks for reorg checks."""

    next_block: int
    hashes: dict[int, str] = attrs.field(factory=dict)
    delivered: dict[str, tuple[int, str]] = attrs.field(factory=dict)
    pending_reverts: dict[str, tuple[int, str]] = attrs.field(factory=dict)
    revert_horizon: int = -1

    @classmethod
    def starting_at(
        cls, cursor: Cursor | None, deployment_block: int, safety_margin: int
    ) -> WalkState:
        """The state a walk resumes from: ``safety_margin`` blocks before the cursor.

        An unreadable cursor restarts from the deployment block (re-reading is safe,
        the store drops duplicates; skipping is not).
        """
        start = deployment_block
        if cursor:
            try:
                start = max(start, int(cursor.get("block", start)) - safety_margin)
            except (TypeError, ValueError):
                log.warning(
                    "raindex: unreadable cursor %r; starting from the deployment block", cursor
                )
        state = cls(next_block=start)
        if cursor and isinstance(cursor.get("hash"), str) and isinstance(cursor.get("block"), int):
            state.hashes[int(cursor["block"]) - 1] = str(cursor["hash"])
        return state

    def to_json(self) -> dict[str, Any]:
        return {
            "hashes": {str(k): v for k, v in self.hashes.items()},
            "delivered": {k: list(v) for k, v in self.delivered.items()},
            "pending_reverts": {k: list(v) for k, v in self.pending_reverts.items()},
            "revert_horizon": self.revert_horizon,
        }

    def load_window(self, data: Mapping[str, Any]) -> None:
        try:
            self.hashes = {int(k): str(v) for k, v in data.get("hashes", {}).items()}
            self.delivered = {
                str(k): (int(v[0]), str(v[1])) for k, v in data.get("delivered", {}).items()
            }
            self.pending_reverts = {
                str(k): (int(v[0]), str(v[1])) for k, v in data.get("pending_reverts", {}).items()
            }
            self.revert_horizon = int(data.get("revert_horizon", -1))
        except (TypeError, ValueError, IndexError, AttributeError):
            log.warning("ignoring an unreadable reorg window in the store")
            self.hashes, self.delivered, self.pending_reverts = {}, {}, {}

    def trim(self, depth: int) -> None:
        if not self.hashes:
            return
        floor = max(self.hashes) - depth
        self.hashes = {k: v for k, v in self.hashes.items() if k >= floor}
        self.delivered = {k: v for k, v in self.delivered.items() if v[0] >= floor}

    def cursor(self) -> dict[str, Any]:
        return {"block": self.next_block, "hash": self.hashes.get(self.next_block - 1)}

    def delivered_fill(self, trade_id: str, block: int, block_hash: str) -> None:
        """A fill of block ``block`` (hash ``block_hash``) was handed over.

        It is no longer reverted if a reorg had taken it off the chain and the new
        branch holds it again.
        """
        self.pending_reverts.pop(trade_id, None)
        self.delivered[trade_id] = (block, block_hash)
        self.hashes[block] = block_hash

    def rewind(self, safe: int, changed: int) -> None:
        """Go back to the block after ``safe`` (the fork point): block ``changed`` was replaced.

        Every fill delivered after the fork point awaits its revert report until the
        walk is past ``changed`` again (it may reappear on the new branch).
        """
        for trade_id, (block, block_hash) in list(self.delivered.items()):
            if block > safe:
                self.pending_reverts[trade_id] = (block, block_hash)
                del self.delivered[trade_id]
        self.hashes = {k: v for k, v in self.hashes.items() if k <= safe}
        self.revert_horizon = max(self.revert_horizon, changed)
        self.next_block = safe + 1

    def take_due_reverts(self, target: int) -> list[tuple[str, int, str]]:
        """The fills to report reverted now (trade id, block, hash), in chain order.

        They are due once the walk is past the replaced block, or has reached the
        cutoff: a fill not read again by then is not on the canonical chain.
        """
        if not self.pending_reverts:
            return []
        if self.next_block <= self.revert_horizon and self.next_block <= target:
            return []
        due = [
            (trade_id, block, block_hash)
            for trade_id, (block, block_hash) in sorted(
                self.pending_reverts.items(), key=lambda kv: kv[1]
            )
        ]
        self.pending_reverts = {}
        self.revert_horizon = -1
        return due


def revert_item(trade_id: str, block: int, block_hash: str, cursor: Cursor) -> SourceItem:
    """A fill that left the canonical chain.

    The core protocol has no item for this yet; when it gains ``RevertedItem``
    (trade id, reason, cursor) the source uses it, and until then the revert is
    recorded as a skipped input with its reason (kept in the audit trail, also
    in the store namespace ``raindex.reverted``) and logged as an error.
    """
    reason = f"reorg: fill {trade_id} from block {block} ({block_hash}) is no longer on the canonical chain"
    reverted_cls = getattr(protocols, "RevertedItem", None)
    if reverted_cls is not None:
        item: SourceItem = reverted_cls(TradeId.parse(trade_id), reason, cursor)
        return item
    return SkippedItem(
        reason, json.dumps({"trade_id": trade_id, "block": block, "block_hash": block_hash}), cursor
    )

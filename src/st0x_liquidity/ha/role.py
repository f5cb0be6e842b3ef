"""Which role this process plays: ``leader`` (holds the lease, ingests, hedges) or ``standby``.

One object per process, shared with the services (``extras["role"]``): the
dashboard, ``/health`` and ``/metrics`` read it. Every change is one log line
with the epoch, so an operator reading either machine's log sees each
takeover and step-down in order.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Literal

import attrs

log = logging.getLogger("st0x_liquidity.ha")

LEADER: Literal["leader"] = "leader"
STANDBY: Literal["standby"] = "standby"


@attrs.define
class Role:
    name: Literal["leader", "standby"] = LEADER
    epoch: int | None = None
    """The lease epoch this process holds (leader), or the one it last saw held (standby)."""
    detail: str = ""
    """Who leads (on a standby) or why the role changed."""
    since: datetime = attrs.field(factory=lambda: datetime.now(UTC))
    changes: int = 0
    changed_at: float = attrs.field(factory=time.monotonic)
    standby_enabled: bool = False
    """False: a single instance (SQLite, or ``[ha] standby = false``); always the leader."""

    @property
    def leader(self) -> bool:
        return self.name == LEADER

    def become(self, name: Literal["leader", "standby"], epoch: int | None, detail: str) -> None:
        """Take role ``name`` and say so in one log line (also when only the epoch moves)."""
        previous = self.name
        if self.changes and name == previous and epoch == self.epoch:
            self.detail = detail
            return
        self.name, self.epoch, self.detail = name, epoch, detail
        self.since = datetime.now(UTC)
        self.changed_at = time.monotonic()
        self.changes += 1
        where = "" if epoch is None else f" (epoch {epoch})"
        log.warning("role: %s%s: %s", name, where, detail)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.name,
            "epoch": self.epoch,
            "since": self.since.isoformat(),
            "detail": self.detail,
            "changes": self.changes,
            "standby_enabled": self.standby_enabled,
        }

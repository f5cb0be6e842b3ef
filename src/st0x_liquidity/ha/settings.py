"""``[ha]``: how a leader keeps its lease and how fast a standby takes over.

The defaults give a takeover within 10 s of the leader's last renewal: the
lease lives ``lease_ttl`` (6 s) past each renewal on the database server's
clock, and a standby asks for it every ``standby_poll`` (1 s), so it is
taken at most ``lease_ttl + standby_poll`` (7 s) after the last renewal.
The leader renews every ``renew_interval`` (2 s) and stops calling the
broker ``fence_margin`` (2 s) before its lease could lapse, by its own
monotonic clock: a healthy leader that misses one renewal keeps hedging, one
that misses two stops before anyone else can start.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..validators import at_most, between, positive


def _renewals_fit(instance: HaConfig, _attr: attrs.Attribute[Any], _value: Any) -> None:
    if not instance.fence_margin < instance.lease_ttl:
        raise ValueError(
            f"fence_margin must be less than lease_ttl ({instance.lease_ttl:g}), "
            f"got {instance.fence_margin:g}"
        )
    room = instance.lease_ttl - instance.fence_margin
    if not instance.renew_interval <= room / 2:
        raise ValueError(
            f"renew_interval must be at most (lease_ttl - fence_margin) / 2 = {room / 2:g} "
            f"(two renewals before the leader fences itself), got {instance.renew_interval:g}"
        )


@attrs.frozen
class HaConfig:
    """``[ha]`` (PostgreSQL only): the leader's lease and the standby's polling."""

    standby: bool = True
    """A second ``run`` on a held database waits as a standby (false: it exits 3)."""
    lease_ttl: float = attrs.field(default=6.0, validator=[positive, between(0.2, 300)])
    """Seconds the lease lives past each renewal (server clock)."""
    renew_interval: float = attrs.field(default=2.0, validator=[positive, at_most(100)])
    """Seconds between the leader's renewals."""
    fence_margin: float = attrs.field(
        default=2.0, validator=[positive, at_most(300), _renewals_fit]
    )
    """Seconds before its lease could lapse that a leader stops calling the broker."""
    standby_poll: float = attrs.field(default=1.0, validator=[positive, at_most(60)])
    """Seconds between a standby's attempts to take the lease."""

    @property
    def takeover_bound(self) -> float:
        """Worst case from the leader's last renewal to a standby holding the lease."""
        return self.lease_ttl + self.standby_poll

"""The ``[source]`` table of the ``raindex`` fill source, checked where it is read.

Kept apart from the source so that the plugin, the CLI and the tests can build and
compare configurations without the chain-facing code, and so that every bound a
setting must respect is stated once, next to the setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

TAGS = ("latest", "safe", "finalized")


def _cutoff(value: Any) -> str | int:
    if isinstance(value, bool):
        raise ValueError(
            f"cutoff must be latest, safe, finalized or a number of confirmations, got {value!r}"
        )
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TAGS:
            return text
        if text.isdigit():
            return int(text)
    raise ValueError(
        f"cutoff must be latest, safe, finalized or a number of confirmations, got {value!r}"
    )


def _at_least(minimum: float) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    def check(_i: object, attr: attrs.Attribute[Any], value: Any) -> None:
        if value < minimum:
            raise ValueError(f"{attr.name} must be at least {minimum}, got {value}")

    return check


@attrs.frozen
class RaindexConfig:
    """The ``[source]`` table for ``type = "raindex"`` (node, orderbook and owner are in ``[evm]``)."""

    cutoff: Any = attrs.field(default="latest", converter=_cutoff)
    poll_interval: float = attrs.field(default=2.0, validator=_at_least(0.01))
    stall_timeout: float = attrs.field(default=30.0, validator=_at_least(0.1))
    request_timeout: float = attrs.field(default=20.0, validator=_at_least(0.1))
    max_block_range: int = attrs.field(default=2000, validator=_at_least(1))
    safety_margin: int = attrs.field(default=16, validator=_at_least(0))
    reorg_depth: int = attrs.field(default=256, validator=_at_least(1))
    backoff_initial: float = attrs.field(default=0.5, validator=_at_least(0.0))
    backoff_max: float = attrs.field(default=30.0, validator=_at_least(0.0))
    checkpoint_interval: float = attrs.field(default=5.0, validator=_at_least(0.0))
    unreachable_after: float = attrs.field(default=10.0, validator=_at_least(0.1))
    """Seconds the walk may go without reaching the node (down, or a request unanswered)
    before :attr:`RaindexSource.problem` says "node unreachable"."""
    usdc_address: str | None = None
    pyth_address: str | None = None
    pyth_feeds: dict[str, str] = attrs.field(factory=dict)
    enrich: bool = True
    enrich_queue: int = attrs.field(default=10000, validator=_at_least(1))

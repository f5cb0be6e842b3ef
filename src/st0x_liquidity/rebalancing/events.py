"""Events of the rebalancing log (table ``rebalancing_events``).

Streams: ``inventory`` (snapshots, drift, trigger decisions) and
``op:<operation id>`` (one mint or redemption each). Inventory effects are
carried explicitly (``Moved``, ``DriftDetected``) so the inventory fold needs no
knowledge of the state machines.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeAlias

import attrs

from ..store.codec import CONVERTER

INVENTORY_STREAM = "inventory"


def op_stream(operation_id: str) -> str:
    return f"op:{operation_id}"


@attrs.frozen
class SnapshotTaken:
    """What one venue reported for every asset it was asked about."""

    TYPE: ClassVar[str] = "SnapshotTaken"
    venue: str
    observed: dict[str, Decimal]
    skipped: tuple[str, ...]
    at: datetime
    error: str | None = None
    vaults: dict[str, Decimal] = attrs.field(factory=dict)
    wallets: dict[str, Decimal] = attrs.field(factory=dict)


@attrs.frozen
class DriftDetected:
    """A snapshot disagreed with the model: ``difference`` = observed - expected."""

    TYPE: ClassVar[str] = "DriftDetected"
    asset: str
    venue: str
    expected: Decimal
    observed: Decimal
    difference: Decimal


@attrs.frozen
class VaultDiscovered:
    """One of the owner's vaults, seen in a fill of ``tx_hash``."""

    TYPE: ClassVar[str] = "VaultDiscovered"
    asset: str
    token: str
    vault_id: str
    tx_hash: str


@attrs.frozen
class TriggerDecided:
    """A trigger that wanted an operation but did not start one (dry run, disabled...)."""

    TYPE: ClassVar[str] = "TriggerDecided"
    asset: str
    action: str
    quantity: Decimal
    onchain_share: Decimal | None
    outcome: str
    at: datetime


@attrs.frozen
class OperationRequested:
    TYPE: ClassVar[str] = "OperationRequested"
    operation_id: str
    kind: str  # "mint" | "redeem"
    asset: str
    quantity: Decimal
    origin: str  # "trigger" | "cli"
    at: datetime
    token: str = ""
    vault_id: str = ""


@attrs.frozen
class StepIntended:
    """Durable before the external effect of ``step`` is attempted."""

    TYPE: ClassVar[str] = "StepIntended"
    operation_id: str
    step: str
    details: dict[str, str]
    at: datetime


@attrs.frozen
class StepDone:
    """The established outcome of ``step`` (request id, tx hash, receipt...)."""

    TYPE: ClassVar[str] = "StepDone"
    operation_id: str
    step: str
    details: dict[str, str]
    at: datetime


@attrs.frozen
class Moved:
    """An operation moved ``quantity`` of ``asset`` within ``venue`` (see MoveKind)."""

    TYPE: ClassVar[str] = "Moved"
    operation_id: str
    asset: str
    venue: str
    kind: str
    quantity: Decimal


@attrs.frozen
class OperationEnded:
    """Terminal: ``outcome`` is completed, failed or abandoned."""

    TYPE: ClassVar[str] = "OperationEnded"
    operation_id: str
    asset: str
    outcome: str
    reason: str | None
    at: datetime


@attrs.frozen
class CostRecorded:
    """What an operation cost, per item (``conversion``, ``broker``, ``cctp``), in USD.

    Positive is a loss. Appended with the operation's end, for the P&L report.
    """

    TYPE: ClassVar[str] = "CostRecorded"
    operation_id: str
    asset: str
    costs: dict[str, Decimal]
    at: datetime


RebalancingEvent: TypeAlias = (
    SnapshotTaken
    | DriftDetected
    | VaultDiscovered
    | TriggerDecided
    | OperationRequested
    | StepIntended
    | StepDone
    | Moved
    | OperationEnded
    | CostRecorded
)

EVENT_TYPES: dict[str, type[Any]] = {
    cls.TYPE: cls
    for cls in (
        SnapshotTaken,
        DriftDetected,
        VaultDiscovered,
        TriggerDecided,
        OperationRequested,
        StepIntended,
        StepDone,
        Moved,
        OperationEnded,
        CostRecorded,
    )
}


def to_payload(event: RebalancingEvent) -> dict[str, Any]:
    payload: dict[str, Any] = CONVERTER.unstructure(event)
    return payload


def from_payload(event_type: str, payload: dict[str, Any]) -> RebalancingEvent:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown rebalancing event type {event_type!r}")
    event: RebalancingEvent = CONVERTER.structure(payload, cls)
    return event

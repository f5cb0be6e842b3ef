"""Events to JSON and back, for the log's ``payload`` and ``metadata`` columns.

The codec belongs to the store, not the domain: events are values, and how
they are spelled on disk is a storage decision. cattrs does the structuring;
decimals, trade ids and symbols are text, so a payload reads back exactly.
Both backends store the same text, so a log copied between them replays the
same.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ..domain.events import EVENT_TYPES, LIMIT_FIELDS, DomainEvent, HedgeIntended
from ..domain.fills import TradeId
from ..domain.symbols import Symbol

assert set(LIMIT_FIELDS) == {
    "order_type",
    "limit_price",
    "session",
    "reference_source",
    "onchain_price",
}, "omit every limit field of a market order's payload (below)"


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(Decimal, lambda v, _: Decimal(str(v)))
    conv.register_unstructure_hook(TradeId, str)
    conv.register_structure_hook(TradeId, lambda v, _: TradeId.parse(v))
    conv.register_unstructure_hook(Symbol, str)
    conv.register_structure_hook(Symbol, lambda v, _: Symbol(v))
    conv.register_unstructure_hook(datetime, lambda d: d.isoformat())
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    # A market order's intent is spelled exactly as before limit orders existed.
    conv.register_unstructure_hook(
        HedgeIntended,
        make_dict_unstructure_fn(
            HedgeIntended,
            conv,
            order_type=override(omit_if_default=True),
            limit_price=override(omit_if_default=True),
            session=override(omit_if_default=True),
            reference_source=override(omit_if_default=True),
            onchain_price=override(omit_if_default=True),
        ),
    )
    return conv


CONVERTER = _make_converter()
"""Shared with other event families stored beside the core's (rebalancing)."""


def event_to_payload(event: DomainEvent) -> dict[str, Any]:
    payload: dict[str, Any] = CONVERTER.unstructure(event)
    return payload


def event_to_json(event: DomainEvent) -> str:
    return json.dumps(event_to_payload(event), separators=(",", ":"))


def event_from_payload(event_type: str, payload: dict[str, Any]) -> DomainEvent:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown event type {event_type!r}")
    event: DomainEvent = CONVERTER.structure(payload, cls)
    return event


def event_from_json(event_type: str, text: str) -> DomainEvent:
    return event_from_payload(event_type, json.loads(text))


def metadata_to_json(metadata: dict[str, Any]) -> str:
    """Sorted keys: one metadata, one spelling, whichever code built the dict."""
    return json.dumps(metadata, separators=(",", ":"), sort_keys=True)

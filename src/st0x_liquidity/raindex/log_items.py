"""One block range's raw logs to the source's items, in chain order (pure).

Every log the walk reads becomes exactly one outcome: a fill of one of our orders,
or a skipped input with its reason (unreadable log, not ours, unknown token, zero
amounts). Nothing is dropped silently, and the items are ordered by block and log
index so the cursor each carries only ever moves forward. The node work this needs
(token metadata, block headers) is done by the source; what is here only decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..domain.fills import Fill
from ..protocols import FillItem, SkippedItem, SourceItem
from .decode import (
    MAX_RAW,
    Event,
    LogDecodeError,
    OrderSide,
    RawLog,
    Skip,
    TokenInfo,
    decode_event,
    side_to_fill,
)
from .log_ranges import RangeRace
from .walk_state import WalkState

Positioned = tuple[tuple[int, int, int], SourceItem]
"""An item with its place in the chain: (block, log index, side index)."""


def decode_logs(
    raw_logs: list[Any], orderbook: str, fallback_block: int
) -> tuple[list[Positioned], list[Event]]:
    """The orderbook's events among ``raw_logs``, and a skipped item for each unreadable one.

    An entry too broken to say its block is placed at ``fallback_block`` (where the
    range starts).
    """
    positioned: list[Positioned] = []
    logs: list[RawLog] = []
    for obj in raw_logs:
        try:
            raw = RawLog.from_rpc(obj)
        except LogDecodeError as exc:
            block = _block_of(obj, fallback_block)
            positioned.append(
                (
                    (block, -1, 0),
                    SkippedItem(
                        str(exc),
                        json.dumps(obj, default=str)[:MAX_RAW],
                        {"block": block, "hash": None},
                    ),
                )
            )
            continue
        if raw.removed:
            continue  # eth_getLogs returns none; a removed log is the reorg check's business
        logs.append(raw)
    events = []
    for raw in logs:
        try:
            events.append(decode_event(raw, orderbook))
        except LogDecodeError as exc:
            positioned.append(
                (
                    (raw.block_number, raw.log_index, 0),
                    SkippedItem(
                        str(exc), raw.describe(), {"block": raw.block_number, "hash": None}
                    ),
                )
            )
    return positioned, events


def tokens_needed(sides: list[OrderSide | Skip]) -> set[str]:
    """Every token our order sides name (their metadata is needed for exact amounts)."""
    return {t for s in sides if isinstance(s, OrderSide) for t in (s.input_token, s.output_token)}


def blocks_needed(sides: list[OrderSide | Skip]) -> list[int]:
    """The blocks of our order sides, in order (their headers give hash and time)."""
    return sorted({s.log.block_number for s in sides if isinstance(s, OrderSide)})


def side_items(
    sides: list[OrderSide | Skip],
    headers: Mapping[int, tuple[str, int]],
    token_errors: Mapping[str, str],
    *,
    tokens: Mapping[str, TokenInfo],
    usdc: str | None,
    state: WalkState,
    on_fill: Callable[[Fill, RawLog], None],
) -> list[Positioned]:
    """The item of each side; each fill is recorded in the walk state and passed to ``on_fill``.

    Raises :class:`RangeRace` when a side's block hash differs from the header read
    for it: the chain moved under the read, and the range is read again.
    """
    positioned: list[Positioned] = []
    for index, side in enumerate(sides):
        item_cursor = {"block": side.log.block_number, "hash": None}
        key = (side.log.block_number, side.log.log_index, index)
        if isinstance(side, Skip):
            positioned.append((key, SkippedItem(side.reason, side.raw, item_cursor)))
            continue
        block_hash, timestamp = headers[side.log.block_number]
        if block_hash != side.log.block_hash:
            raise RangeRace(f"block {side.log.block_number} changed while reading it")
        missing = [
            token_errors[t] for t in (side.input_token, side.output_token) if t in token_errors
        ]
        if missing:
            positioned.append((key, SkippedItem(missing[0], side.log.describe(), item_cursor)))
            continue
        stamp = side.log.block_timestamp if side.log.block_timestamp is not None else timestamp
        result = side_to_fill(side, tokens, datetime.fromtimestamp(stamp, UTC), usdc)
        if isinstance(result, str):
            positioned.append((key, SkippedItem(result, side.log.describe(), item_cursor)))
            continue
        state.delivered_fill(str(result.trade_id), result.block_number, block_hash)
        positioned.append((key, FillItem(result, item_cursor)))
        on_fill(result, side.log)
    return positioned


def in_chain_order(positioned: list[Positioned]) -> list[SourceItem]:
    """The items sorted by their place in the chain (stable for equal places)."""
    positioned.sort(key=lambda pair: pair[0])
    return [item for _, item in positioned]


def _block_of(obj: Any, default: int) -> int:
    try:
        return int(obj["blockNumber"], 16)
    except (KeyError, TypeError, ValueError):
        return default

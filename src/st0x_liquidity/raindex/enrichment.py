"""What the raindex source adds to a fill after handing it over: gas and the Pyth price.

Enrichment is off the hot path (a fill is never held for it): a receipt and a call
trace can take the node a while, and tracing may be unsupported. Each field a
request could not fill is left empty with the reason in ``errors``; the record is
kept in the store (namespace ``raindex.enrichment``, by trade id), where the engine's
price checks read the ``pyth`` price.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..domain.fills import Fill
from ..protocols import PositionStore
from .decode import RawLog
from .node import NodeUnavailable, RpcError
from .pyth import PythError, decode_price, extract_price, pyth_calls

log = logging.getLogger("st0x_liquidity.raindex.source")
"""The source's logger: its lines keep the one name operators filter on."""

ENRICHMENT_NS = "raindex.enrichment"

Request = Callable[[str, list[Any]], Awaitable[Any]]
"""A JSON-RPC method and its params to the node's answer."""


class Enricher:
    """The fills awaiting enrichment, and the two workers that enrich them and store the record.

    The walk only queues (never waits); a full queue leaves the fill without its
    record (logged) rather than holding up the walk, and so the hedge.
    """

    def __init__(
        self,
        enrich: Callable[[Fill, RawLog], Awaitable[dict[str, Any]]],
        store: PositionStore | None,
        *,
        enabled: bool,
        size: int,
    ) -> None:
        self._enrich = enrich
        self._store = store
        self._enabled = enabled
        self._queue: asyncio.Queue[tuple[Fill, RawLog]] = asyncio.Queue(size)
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the workers (once; nothing when enrichment is off)."""
        if self._enabled and not self._workers:
            self._workers = [
                asyncio.create_task(self._worker(), name=f"raindex-enrich-{i}") for i in range(2)
            ]

    def queue(self, fill: Fill, raw: RawLog) -> None:
        if not self._enabled:
            return
        try:
            self._queue.put_nowait((fill, raw))
        except asyncio.QueueFull:
            log.warning(
                "raindex: enrichment queue full; %s left without gas/Pyth data", fill.trade_id
            )

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _worker(self) -> None:
        while True:
            fill, raw = await self._queue.get()
            try:
                record = await self._enrich(fill, raw)
                if self._store is not None:
                    await self._store.put_blob(
                        ENRICHMENT_NS, str(fill.trade_id), json.dumps(record).encode()
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("raindex: enrichment of %s failed: %s", fill.trade_id, exc)


async def enrichment_record(
    fill: Fill, raw: RawLog, request: Request, pyth: str | None, feeds: dict[str, str]
) -> dict[str, Any]:
    """Block time, gas and the Pyth price the order read; failures leave fields empty."""
    record: dict[str, Any] = {
        "trade_id": str(fill.trade_id),
        "block_number": fill.block_number,
        "block_hash": raw.block_hash,
        "block_timestamp": fill.block_timestamp.isoformat(),
        "gas_used": None,
        "effective_gas_price": None,
        "pyth": None,
        "errors": [],
    }
    try:
        receipt = await request("eth_getTransactionReceipt", [raw.tx_hash])
        if isinstance(receipt, dict):
            record["gas_used"] = int(receipt["gasUsed"], 16)
            price = receipt.get("effectiveGasPrice")
            record["effective_gas_price"] = int(price, 16) if isinstance(price, str) else None
        else:
            record["errors"].append("no receipt")
    except (RpcError, NodeUnavailable, KeyError, ValueError, TypeError) as exc:
        record["errors"].append(f"receipt: {exc}")
    if pyth is None:
        record["errors"].append("pyth: no pyth_address configured")
    else:
        try:
            trace = await request("debug_traceTransaction", [raw.tx_hash, {"tracer": "callTracer"}])
            record["pyth"] = extract_price(trace, pyth, fill.symbol.ticker, feeds).to_json()
        except (RpcError, NodeUnavailable, PythError) as exc:
            record["errors"].append(f"pyth: {exc}")
    if record["errors"]:
        log.info(
            "raindex: enrichment of %s incomplete: %s",
            fill.trade_id,
            "; ".join(record["errors"]),
        )
    return record


def pyth_report(
    trace: Any, tx_hash: str, pyth: str, symbol: str | None, feeds: dict[str, str]
) -> dict[str, Any]:
    """What ``get-pyth-price`` prints: every Pyth read in the transaction, and the pick."""
    calls = []
    for call in pyth_calls(trace, pyth):
        try:
            calls.append(decode_price(call).to_json())
        except PythError as exc:
            calls.append({"feed_id": call.feed_id, "function": call.function, "error": str(exc)})
    result: dict[str, Any] = {"tx_hash": tx_hash, "pyth_address": pyth, "calls": calls}
    try:
        result["price"] = extract_price(trace, pyth, symbol, feeds).to_json()
    except PythError as exc:
        result["price"] = None
        result["error"] = str(exc)
    return result

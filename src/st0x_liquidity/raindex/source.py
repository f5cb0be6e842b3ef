"""The ``raindex`` fill source: a checkpointed ``eth_getLogs`` walk, woken by a subscription.

The durable truth is the walk: whole block ranges of the orderbook's
``TakeOrderV3``/``ClearV3``/``AfterClearV2`` logs, from ``evm.deployment_block``
or the durable cursor, up to the cutoff block (``latest``, ``safe``,
``finalized`` or N confirmations). Every item carries a cursor that is only
ever *behind* what was fully handed over, so a restart re-reads at worst a few
blocks (the store drops duplicates by trade id) and never skips one.

Over WebSocket, a ``newHeads`` subscription wakes the walk as soon as a block
lands; the walk also runs every ``poll_interval`` without a wake-up, and a
subscription silent for ``stall_timeout`` is treated as dead and reconnected
(load-balanced RPCs stall subscriptions silently). Over HTTP the walk polls.
Any failure of the node — refused request, dropped socket, restarted node —
is logged and retried with capped exponential backoff; it never ends the
stream. A log range the node refuses is halved until it passes.

``RaindexSource.caught_up`` (read by the dashboard's ``/health``) is True once
a walk has reached the cutoff block; it is False from the start, after any
failure (until the walk after the reconnect reaches the cutoff again), and
while a walk has more than ``max_block_range`` blocks to read (a backfill).

Reorgs: the hashes of recently walked blocks are remembered (also across
restarts, in the store). When the last walked block's hash changes, the walk
finds the fork point, re-reads from there, and every fill delivered from the
abandoned branch that the canonical chain does not contain again is reported
as reverted (see :func:`.walk_state.revert_item`).

This module is the follow loop: connecting, the walk over block ranges, retries.
Each idea it relies on is its own module: :mod:`.config` (the ``[source]``
table), :mod:`.walk_state` (cursor, reorg window, reverts), :mod:`.log_ranges`
(``eth_getLogs`` at a size the node accepts), :mod:`.log_items` (logs to items),
:mod:`.tokens` (symbol and decimals), :mod:`.enrichment` (gas and Pyth, off the
hot path), :mod:`.heads` (new-heads wake-ups and stalls) and
:mod:`.reachability` (what :attr:`RaindexSource.problem` says). ``RaindexConfig``
and the store namespaces stay importable from here.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..backoff import backoff_delay
from ..config import EvmConfig
from ..domain.fills import Fill
from ..protocols import CheckpointItem, Cursor, FillItem, PositionStore, SourceItem
from .config import TAGS, RaindexConfig
from .decode import RawLog, TokenInfo, normalize_address, owned_sides
from .enrichment import ENRICHMENT_NS, Enricher, enrichment_record, pyth_report
from .heads import Heads, StallError
from .log_items import blocks_needed, decode_logs, in_chain_order, side_items, tokens_needed
from .log_ranges import RangeRace, RangeSize, get_logs
from .node import Node, NodeUnavailable, RpcError, raise_if_cancelled
from .reachability import Reachability
from .tokens import TOKENS_NS, load_tokens
from .walk_state import REVERTED_NS, WINDOW_NS, WalkState, revert_item

__all__ = [
    "ENRICHMENT_NS",
    "REVERTED_NS",
    "TAGS",
    "TOKENS_NS",
    "WINDOW_NS",
    "RaindexConfig",
    "RaindexSource",
    "StallError",
    "WalkState",
]

log = logging.getLogger(__name__)


class RaindexSource:
    """Fills of ``evm.order_owner``'s Raindex orders at ``evm.orderbook``."""

    name = "raindex"

    def __init__(self, config: RaindexConfig, evm: EvmConfig, store: PositionStore | None) -> None:
        self.config = config
        self.evm = evm
        self.orderbook = normalize_address(evm.orderbook)
        self.owner = normalize_address(evm.order_owner)
        self.usdc = normalize_address(config.usdc_address) if config.usdc_address else None
        self.pyth = normalize_address(config.pyth_address) if config.pyth_address else None
        self.feeds = {k.upper(): v.lower() for k, v in config.pyth_feeds.items()}
        self.store = store
        self.node: Node | None = None
        self.tokens: dict[str, TokenInfo] = {}
        self._heads = Heads()
        self._range = RangeSize(config.max_block_range)
        self._rng = random.Random()
        self._sleep: Callable[[float], Any] = asyncio.sleep
        self._enricher = Enricher(
            self.enrich,
            store,
            enabled=config.enrich,
            size=config.enrich_queue,
        )
        self._closed = False
        self._last_checkpoint = time.monotonic()
        self._checkpoint_block = -1
        self.stats = {
            "get_logs": 0,
            "get_logs_refused": 0,
            "reconnects": 0,
            "reorgs": 0,
            "reverted": 0,
        }
        self.window_key = f"{self.orderbook}:{self.owner}"
        self.caught_up = False
        """True once the walk has reached the cutoff block; False while backfilling."""
        self._reach = Reachability(config.unreachable_after)

    # -- what the dashboard reads ----------------------------------------------------

    @property
    def problem(self) -> str | None:
        """Says "node unreachable: …" while the walk cannot reach the node, else None.

        See :meth:`.reachability.Reachability.problem` for the rule.
        """
        return self._reach.problem()

    @property
    def last_error(self) -> str | None:
        """The walk's last failure, as logged (None before any)."""
        return self._reach.last_error

    @property
    def head_block(self) -> int | None:
        """The newest block number the node announced or reported (None before any)."""
        return self._heads.number if self._heads.number >= 0 else None

    @property
    def last_contact_seconds(self) -> float | None:
        """Seconds since the node last answered one of the walk's requests."""
        return self._reach.last_contact_seconds()

    # -- lifecycle -----------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        await self._enricher.close()
        await self._disconnect()

    async def _disconnect(self) -> None:
        node, self.node = self.node, None
        if node is not None:
            await node.close()

    def _on_head(self, head: dict[str, Any]) -> None:
        self._heads.announced(head)

    async def _connect(self) -> Node:
        node = Node(self.evm.ws_rpc_url, self.config.request_timeout)
        await node.connect(self._on_head if node.websocket else None)
        self._heads.heard()
        self._heads.number = (
            int(await node.request("eth_blockNumber", []), 16) if node.websocket else -1
        )
        self.node = node
        self._reach.reached()
        log.info(
            "raindex: connected to %s (%s)", _redact(node.url), "ws" if node.websocket else "http"
        )
        return node

    async def _request(self, method: str, params: list[Any], *, walk: bool = True) -> Any:
        """``method`` on the node; ``walk`` requests count for :attr:`problem`."""
        node = self.node
        if node is None:
            raise NodeUnavailable("not connected")
        if not walk:
            return await node.request(method, params)
        with self._reach.waiting():
            try:
                result = await node.request(method, params)
            except RpcError:
                self._reach.reached()  # an answer, if a refusal: the node is there
                raise
        self._reach.reached()
        return result

    # -- the stream ----------------------------------------------------------------

    async def stream(self, cursor: Cursor | None) -> AsyncIterator[SourceItem]:
        state = await self._initial_state(cursor)
        log.info("raindex: walking from block %d (cutoff %s)", state.next_block, self.config.cutoff)
        self._enricher.start()
        failures = 0
        try:
            while not self._closed:
                raise_if_cancelled()
                try:
                    if self.node is None or not self.node.alive:
                        await self._disconnect()
                        with self._reach.waiting():
                            await self._connect()
                    async for item in self._walk(state):
                        failures = 0
                        yield item
                    failures = 0
                    await self._wait_for_wake()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Node trouble is expected (refusals, drops, restarts, stalls); anything
                    # else (a malformed answer, a store hiccup) is logged with its traceback.
                    # Either way the walk resumes from where it was: losing a fill is worse.
                    failures += 1
                    self.caught_up = False
                    self._reach.failed(exc)
                    self.stats["reconnects"] += 1
                    delay = backoff_delay(
                        failures, self.config.backoff_initial, self.config.backoff_max, self._rng
                    )
                    expected = isinstance(exc, NodeUnavailable | RpcError | RangeRace | StallError)
                    log.log(
                        logging.WARNING if expected else logging.ERROR,
                        "raindex: %s%s; reconnecting in %.1fs (attempt %d)",
                        "" if expected else f"{type(exc).__name__}: ",
                        exc,
                        delay,
                        failures,
                        exc_info=not expected,
                    )
                    await self._disconnect()
                    await self._sleep(delay)
        finally:
            await self._disconnect()

    async def _initial_state(self, cursor: Cursor | None) -> WalkState:
        state = WalkState.starting_at(cursor, self.evm.deployment_block, self.config.safety_margin)
        if cursor and self.store is not None:
            blob = await self.store.get_blob(WINDOW_NS, self.window_key)
            if blob:
                try:
                    state.load_window(json.loads(blob))
                except ValueError:
                    log.warning("raindex: unreadable reorg window in the store; ignored")
        return state

    async def _save_window(self, state: WalkState) -> None:
        if self.store is not None:
            await self.store.put_blob(
                WINDOW_NS, self.window_key, json.dumps(state.to_json()).encode()
            )

    async def _wait_for_wake(self) -> None:
        node = self.node
        if node is None or not node.websocket:
            await self._sleep(self.config.poll_interval)
            return
        await self._heads.wait(
            node, self.config.poll_interval, self.config.stall_timeout, self._request
        )

    async def _target(self) -> int:
        cutoff = self.config.cutoff
        if isinstance(cutoff, int):
            head = int(await self._request("eth_blockNumber", []), 16)
            return head - cutoff
        if cutoff == "latest":
            return int(await self._request("eth_blockNumber", []), 16)
        block = await self._request("eth_getBlockByNumber", [cutoff, False])
        if not isinstance(block, dict):
            return -1
        return int(block["number"], 16)

    async def _header(self, number: int) -> tuple[str, int] | None:
        block = await self._request("eth_getBlockByNumber", [hex(number), False])
        if not isinstance(block, dict):
            return None
        return str(block["hash"]).lower(), int(block["timestamp"], 16)

    async def _walk(self, state: WalkState) -> AsyncIterator[SourceItem]:
        """Walk from ``state.next_block`` to the cutoff block; yields items in chain order."""
        target = await self._target()
        await self._check_reorg(state)
        if target - state.next_block + 1 > self.config.max_block_range:
            self.caught_up = False  # a backfill: more than one range behind the cutoff
        ranges = 0
        while state.next_block <= target and not self._closed:
            start = state.next_block
            end, raw_logs = await get_logs(
                self._request,
                self.orderbook,
                start,
                min(target, start + self._range.current - 1),
                size=self._range,
                stats=self.stats,
            )
            end_header = await self._header(end)
            if end_header is None:
                raise RangeRace(f"block {end} vanished while reading it")
            items = await self._items(raw_logs, state)
            for item in items:
                yield item
            ranges += 1
            state.hashes[end] = end_header[0]
            state.next_block = end + 1
            state.trim(self.config.reorg_depth)
            for item in self._due_reverts(state, target):
                yield item
            now = time.monotonic()
            due = now - self._last_checkpoint >= self.config.checkpoint_interval
            backfilled = ranges > 1 and state.next_block > target
            if any(isinstance(i, FillItem) for i in items) or due or backfilled:
                await self._save_window(state)
            if state.next_block > self._checkpoint_block and (due or backfilled):
                self._last_checkpoint = now
                self._checkpoint_block = state.next_block
                yield CheckpointItem(state.cursor())
        if state.next_block > target and not self._closed:
            self.caught_up = True

    def _due_reverts(self, state: WalkState, target: int) -> list[SourceItem]:
        items: list[SourceItem] = []
        for trade_id, block, block_hash in state.take_due_reverts(target):
            log.error("raindex: fill %s (block %d) reverted by a reorg", trade_id, block)
            self.stats["reverted"] += 1
            items.append(revert_item(trade_id, block, block_hash, state.cursor()))
        return items

    async def _check_reorg(self, state: WalkState) -> None:
        known = [b for b in state.hashes if b < state.next_block]
        if not known:
            return
        last = max(known)
        header = await self._header(last)
        if header is not None and header[0] == state.hashes[last]:
            return
        self.stats["reorgs"] += 1
        safe = None
        for block in sorted(known, reverse=True):
            header = await self._header(block)
            if header is not None and header[0] == state.hashes[block]:
                safe = block
                break
        if safe is None:
            safe = max(self.evm.deployment_block, min(known) - self.config.safety_margin) - 1
        log.warning(
            "raindex: reorg detected: block %d changed; re-reading from block %d", last, safe + 1
        )
        state.rewind(safe, last)

    async def _items(self, raw_logs: list[Any], state: WalkState) -> list[SourceItem]:
        positioned, events = decode_logs(raw_logs, self.orderbook, state.next_block)
        sides = owned_sides(events, self.owner)
        token_errors = await self._load_tokens(tokens_needed(sides))
        headers: dict[int, tuple[str, int]] = {}
        for number in blocks_needed(sides):
            header = await self._header(number)
            if header is None:
                raise RangeRace(f"block {number} vanished while reading it")
            headers[number] = header
        positioned += side_items(
            sides,
            headers,
            token_errors,
            tokens=self.tokens,
            usdc=self.usdc,
            state=state,
            on_fill=self._enricher.queue,
        )
        return in_chain_order(positioned)

    # -- token metadata ------------------------------------------------------------

    async def _load_tokens(self, tokens: set[str]) -> dict[str, str]:
        """Make ``self.tokens`` know every token in ``tokens``; reasons for those it cannot."""
        return await load_tokens(self.tokens, tokens, self.store, self._request)

    # -- enrichment (off the hot path) ---------------------------------------------

    async def enrich(self, fill: Fill, raw: RawLog) -> dict[str, Any]:
        """Block time, gas and the Pyth price the order read; failures leave fields empty."""
        request = functools.partial(self._request, walk=False)
        return await enrichment_record(fill, raw, request, self.pyth, self.feeds)

    async def trace_pyth(self, tx_hash: str, symbol: str | None = None) -> dict[str, Any]:
        """What ``get-pyth-price`` prints: every Pyth read in the transaction, and the pick."""
        if self.pyth is None:
            raise ValueError("[source] pyth_address is not configured")
        node = await self._connect_once()
        try:
            trace = await node.request(
                "debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}]
            )
        finally:
            await node.close()
        return pyth_report(trace, tx_hash, self.pyth, symbol, self.feeds)

    async def _connect_once(self) -> Node:
        node = Node(self.evm.ws_rpc_url, self.config.request_timeout)
        await node.connect(None)
        return node


def _redact(url: str) -> str:
    """Node URLs often carry an API key in the path or query: show scheme and host only."""
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}{sep}{host}" if sep else "<node>"

"""The rebalancer service that runs beside the engine.

It keeps the inventory book current (woken by every engine commit, and by its
own snapshot timer), records a snapshot of each venue every
``snapshot_interval`` seconds, and checks every asset's band after each of
those. An asset outside its band gets one decision; what happens to it
depends on ``enabled``/``dry_run`` and on whether an operation runner for that
action is available (mint and redemption need ``[rebalancing]`` chain and
custody settings; USDC moves need ``[rebalancing.cctp]`` and a broker with USDC
custody). Decisions that do not
start an operation are recorded as ``TriggerDecided`` (once per change, not on
every fill), so the audit trail says what the bot would have done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from ..errors import NotSupportedError
from ..protocols import Executor
from .config import RebalancingConfig
from .discovery import discover_vaults
from .events import INVENTORY_STREAM, TriggerDecided
from .inventory import USDC, Venue
from .keeper import InventoryKeeper
from .log import RebalancingLog
from .operations import OperationRunner
from .state import TO_OFFCHAIN, TO_ONCHAIN
from .triggers import Action, Decision, decide
from .usdc_runner import UsdcRunner

log = logging.getLogger(__name__)

OnchainReader = Callable[[], Awaitable[tuple[dict[str, Decimal], dict[str, Decimal]]]]
"""Returns (vault balances, wallet balances) per asset."""

USDC_ACTIONS = (Action.USDC_TO_ONCHAIN, Action.USDC_TO_OFFCHAIN)

OperationStarter = Callable[[Decision], Awaitable[str | None]]
"""Starts an operation for a decision; returns its id, or None when it cannot."""


class Rebalancer:
    def __init__(
        self,
        database: Path | str,
        config: RebalancingConfig,
        executor: Executor | None,
        *,
        onchain: OnchainReader | None = None,
        starter: OperationStarter | None = None,
        runner: OperationRunner | None = None,
    ) -> None:
        self.config = config
        self.executor = executor
        self.onchain = onchain
        self.starter = starter
        self.log = RebalancingLog(database)
        self.runner = runner
        if runner is not None:
            runner.log = self.log
            if starter is None:
                self.starter = self._start_operation
        self.driving: dict[str, asyncio.Task[None]] = {}
        self._token_assets: dict[str, str | None] = {}
        self.keeper = InventoryKeeper(self.log)
        self._wake = asyncio.Event()
        self._last_recorded: dict[str, tuple[str, Decimal]] = {}
        self.first_request_latency: float | None = None
        self.started: list[str] = []

    def wake(self) -> None:
        self._wake.set()

    async def open(self) -> None:
        await self.log.open()
        await self.keeper.refresh()

    async def close(self) -> None:
        for task in self.driving.values():
            task.cancel()
        await asyncio.gather(*self.driving.values(), return_exceptions=True)
        self.driving.clear()
        if isinstance(self.runner, UsdcRunner):
            await self.runner.close()  # its chain, Ethereum and Iris connections
        await self.log.close()

    # -- operations -------------------------------------------------------------------

    async def _start_operation(self, decision: Decision) -> str | None:
        assert self.runner is not None and decision.action is not None
        self.runner.book = self.keeper.book
        if decision.action in USDC_ACTIONS:
            kind = TO_ONCHAIN if decision.action is Action.USDC_TO_ONCHAIN else TO_OFFCHAIN
        else:
            kind = "mint" if decision.action is Action.MINT else "redeem"
            if isinstance(self.runner.vault(decision.asset), str):
                return None
        self.runner.core_position = self.keeper.book.core_position
        try:
            operation_id = await self.runner.request(
                kind, decision.asset, decision.quantity, "trigger"
            )
        except ValueError as exc:
            log.info("rebalancing %s: %s refused: %s", decision.asset, kind, exc)
            return None
        self._drive(operation_id)
        return operation_id

    def _drive(self, operation_id: str) -> None:
        if operation_id in self.driving or self.runner is None:
            return
        runner = self.runner

        async def drive() -> None:
            try:
                await runner.run(operation_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("operation %s stopped; it resumes on the next start", operation_id)
            finally:
                self.driving.pop(operation_id, None)
                self.wake()  # operation end: check the bands again

        self.driving[operation_id] = asyncio.create_task(drive(), name=f"op-{operation_id}")

    async def discover(self) -> None:
        """Vaults of the owner's orders in fills folded since the last call."""
        book = await self.keeper.refresh()
        if self.runner is None or not book.fill_txs or not self.config.orderbook:
            return
        txs, book.fill_txs = list(dict.fromkeys(book.fill_txs)), []
        known = {key for vaults in book.vaults.values() for key in vaults}
        try:
            found = await discover_vaults(
                self.runner.chain,
                self.config.orderbook,
                self.runner.wallet,
                txs,
                known=known,
                cache=self._token_assets,
            )
        except Exception as exc:
            log.warning("vault discovery failed (retried with the next fills): %s", exc)
            book.fill_txs = txs + book.fill_txs
            return
        if found:
            for event in found:
                log.info(
                    "vault discovered: %s %s in %s", event.asset, event.vault_id, event.tx_hash
                )
            await self.log.append(INVENTORY_STREAM, list(found), core_position=book.core_position)
            await self.keeper.refresh()

    async def resume_operations(self) -> list[str]:
        """Drive every operation without a terminal event (ours after a crash, or the CLI's)."""
        if self.runner is None:
            return []
        book = await self.keeper.refresh()
        open_ops = [i.active_operation for i in book.assets.values() if i.active_operation]
        for operation_id in open_ops:
            if operation_id is not None:
                self._drive(operation_id)
        return [o for o in open_ops if o is not None]

    async def land_limbo(self) -> list[str]:
        """USDC burned by a failed operation and never minted: did anyone mint it since?

        Checked once per snapshot while USDC has an amount in flight and no operation.
        """
        runner = self.runner
        if not isinstance(runner, UsdcRunner) or not runner.usdc_ready:
            return []
        inv = self.keeper.book.assets.get(USDC)
        if inv is None or inv.active_operation is not None or not inv.has_inflight:
            return []
        try:
            landed = await runner.land_all()
        except Exception as exc:
            log.warning("checking USDC in limbo failed (retried next snapshot): %s", exc)
            return []
        if landed:
            await self.keeper.refresh()
        return landed

    async def run(self) -> None:
        await self.open()
        try:
            next_snapshot = time.monotonic()
            while True:
                if time.monotonic() >= next_snapshot:
                    await self.snapshot()
                    await self.land_limbo()
                    next_snapshot = time.monotonic() + self.config.snapshot_interval
                await self.discover()
                await self.resume_operations()
                await self.check()
                timeout = max(0.0, next_snapshot - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
        finally:
            await self.close()

    # -- snapshots --------------------------------------------------------------------

    async def snapshot(self) -> None:
        if self.executor is not None:
            try:
                inventory = await self.executor.inventory()
            except NotSupportedError:
                pass
            except Exception as exc:
                log.warning("offchain snapshot failed: %s", exc)
                await self.keeper.record_failed_snapshot(Venue.OFFCHAIN, str(exc)[:300])
            else:
                observed = {str(p.symbol).upper(): p.quantity for p in inventory.positions}
                observed[USDC] = inventory.cash
                _, drifts = await self.keeper.record_snapshot(
                    Venue.OFFCHAIN, observed, complete=True
                )
                for drift in drifts:
                    log.info("offchain drift %s: %s", drift.asset, drift.difference)
        if self.onchain is not None:
            try:
                vaults, wallets = await self.onchain()
            except Exception as exc:
                log.warning("onchain snapshot failed: %s", exc)
                await self.keeper.record_failed_snapshot(Venue.ONCHAIN, str(exc)[:300])
            else:
                observed = {
                    a: vaults.get(a, Decimal(0)) + wallets.get(a, Decimal(0))
                    for a in set(vaults) | set(wallets)
                }
                await self.keeper.record_snapshot(
                    Venue.ONCHAIN, observed, complete=False, vaults=vaults, wallets=wallets
                )

    # -- triggers ---------------------------------------------------------------------

    async def check(self) -> list[Decision]:
        """Check every asset's band once; start or record what it calls for."""
        book = await self.keeper.refresh()
        now = datetime.now(UTC)
        decisions = []
        for asset in sorted(book.assets):
            decision = decide(book.assets[asset], self.config.rules(asset), now)
            if decision.action is None:
                self._last_recorded.pop(asset, None)
                continue
            decisions.append(decision)
            await self._act(decision, now)
        return decisions

    async def _act(self, decision: Decision, now: datetime) -> None:
        if not self.config.enabled:
            outcome = "disabled"
        elif self.config.dry_run:
            outcome = "dry-run"
        elif decision.action in USDC_ACTIONS and not (
            isinstance(self.runner, UsdcRunner) and self.runner.usdc_ready
        ):
            outcome = "USDC moves need [rebalancing.cctp] (not configured)"
        elif self.starter is None:
            outcome = "no operation runner configured"
        else:
            operation_id = await self.starter(decision)
            if operation_id is not None:
                self.started.append(operation_id)
                self._last_recorded.pop(decision.asset, None)
                return
            outcome = "runner refused"
        assert decision.action is not None
        key = (f"{decision.action.value}:{outcome}", decision.quantity)
        if self._last_recorded.get(decision.asset) == key:
            return
        self._last_recorded[decision.asset] = key
        log.info(
            "rebalancing %s: would %s %s (%s)",
            decision.asset,
            decision.action.value,
            decision.quantity,
            outcome,
        )
        await self.log.append(
            INVENTORY_STREAM,
            [
                TriggerDecided(
                    decision.asset,
                    decision.action.value,
                    decision.quantity,
                    decision.onchain_share,
                    outcome,
                    now,
                )
            ],
            core_position=self.keeper.book.core_position,
        )

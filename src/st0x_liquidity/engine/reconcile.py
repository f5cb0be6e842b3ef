"""Reconciliation: does the broker hold what the books say it should?

Before the first new hedge and then every ``[reconciliation] interval``
seconds, the broker's positions (``executor.inventory()``) are compared with
the books' hedged position per symbol: the configured starting holding plus
every filled hedge buy minus every filled hedge sell. A symbol whose hedge is
in flight (or whose hedges moved while the broker was asked) is not compared:
its fills may be on their way. A difference beyond ``tolerance`` raises a
critical alert and, with ``halt_on_mismatch``, halts the symbol. Each run is a
``ReconciliationChecked`` event; the last one is in ``status.reconciliation``,
the dashboard and ``audit``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..backoff import backoff_delay
from ..domain.events import (
    RECONCILIATION,
    NewEvent,
    ReconciliationChecked,
    SymbolReconciliation,
)
from ..domain.numbers import ZERO, add, fmt, sub
from ..domain.risk import TradingState
from ..errors import NotSupportedError
from .risk import RiskGate
from .state import EngineContext, log


class Reconciler:
    def __init__(self, engine: EngineContext, risk: RiskGate) -> None:
        self.engine = engine
        self.risk = risk
        self.config = engine.config.reconciliation
        self.first = asyncio.Event()
        """Set once hedging may start: the first reconciliation got an answer
        (or reconciliation is disabled or unsupported)."""
        if not self.config.enabled:
            self.first.set()

    async def run(self) -> None:
        if not self.config.enabled:
            self.engine.status.reconciliation = {"status": "disabled"}
            return
        attempt = 0
        while not self.engine.stopping:
            if not await self.engine.wait_for_broker():
                return
            checked = await self.reconcile_once()
            if checked.status == "error":
                attempt += 1
                delay = backoff_delay(
                    attempt,
                    1.0,
                    max(self.engine.config.hedging.retry_backoff_max, 1.0),
                    self.engine.rng,
                )
            else:
                attempt = 0
                delay = self.config.interval
            if not self.first.is_set() and checked.status != "error":
                self.first.set()
                self.engine.hedge_symbols(list(self.engine.books))
            if checked.status == "unsupported":
                return  # the executor cannot say: nothing to ask again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.stop_event.wait(), delay)

    async def reconcile_once(self) -> ReconciliationChecked:
        tolerance = self.config.tolerance
        before = dict(self.risk.hedged)
        busy = self._in_flight()
        try:
            inventory = await self.engine.executor.inventory()
        except NotSupportedError as exc:
            checked = ReconciliationChecked("unsupported", tolerance=tolerance, detail=str(exc))
            log.warning(
                "reconciliation unsupported by the broker (%s): positions are not checked", exc
            )
            return await self._record(checked)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # broker errors and plugin bugs alike: say so, ask again
            checked = ReconciliationChecked("error", tolerance=tolerance, detail=str(exc))
            log.warning("reconciliation failed: %s", exc)
            return await self._record(checked)
        busy |= self._in_flight()
        broker: dict[str, Decimal] = {}
        for position in inventory.positions:
            ticker = position.symbol.ticker
            broker[ticker] = add(broker.get(ticker, ZERO), position.quantity)
        starting = self.config.starting_positions
        hedged = self.risk.hedged
        moved = {t for t in set(before) | set(hedged) if before.get(t) != hedged.get(t)}
        skipped = busy | moved
        compared: list[SymbolReconciliation] = []
        for ticker in sorted(set(broker) | set(hedged) | set(starting)):
            if ticker in skipped:
                continue
            books = add(starting.get(ticker, ZERO), hedged.get(ticker, ZERO))
            held = broker.get(ticker, ZERO)
            difference = sub(held, books)
            compared.append(
                SymbolReconciliation(
                    ticker, held, books, difference, difference.copy_abs() > tolerance
                )
            )
        mismatched = [c for c in compared if c.mismatch]
        checked = ReconciliationChecked(
            "mismatch" if mismatched else "ok",
            tuple(compared),
            tuple(sorted(skipped)),
            tolerance,
        )
        await self._record(checked)
        for c in mismatched:
            log.error(
                "reconciliation mismatch: %s broker holds %s, the books say %s (difference %s)",
                c.symbol,
                fmt(c.broker),
                fmt(c.books),
                fmt(c.difference),
            )
            if self.config.halt_on_mismatch and self.risk.state_of(c.symbol)[0] is not (
                TradingState.HALTED
            ):
                await self.risk.request(
                    c.symbol,
                    TradingState.HALTED,
                    f"reconciliation mismatch: broker holds {fmt(c.broker)}, "
                    f"the books say {fmt(c.books)}",
                    "reconciliation",
                    None,
                )
        return checked

    def _in_flight(self) -> set[str]:
        return {t for t, book in self.engine.books.items() if book.in_flight is not None}

    async def _record(self, checked: ReconciliationChecked) -> ReconciliationChecked:
        self.engine.status.reconciliation = {
            **reconciliation_json(checked),
            "at": datetime.now(UTC).isoformat(),
        }
        await self.engine.append([NewEvent(RECONCILIATION, "broker", checked)])
        return checked


def reconciliation_json(checked: ReconciliationChecked) -> dict[str, Any]:
    """The stable JSON shape (``audit --json``'s ``reconciliation``, the dashboard)."""
    return {
        "status": checked.status,
        "symbols": [
            {
                "symbol": c.symbol,
                "broker": fmt(c.broker),
                "books": fmt(c.books),
                "difference": fmt(c.difference),
                "mismatch": c.mismatch,
            }
            for c in checked.symbols
        ],
        "skipped": list(checked.skipped),
        "tolerance": fmt(checked.tolerance),
        "detail": checked.detail,
    }

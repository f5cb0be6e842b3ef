"""The market gate: new hedges go out only while the broker's market is open.

Ingestion, order tracking and recovery run whatever the clock says; fills
accumulate while the market is closed and their hedges go out at the open.
If the clock cannot be read, the last known state is kept.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ..backoff import backoff_delay
from ..errors import AuthenticationRequiredError, BrokerError
from .state import EngineContext, log


class MarketGate:
    def __init__(self, engine: EngineContext) -> None:
        self.engine = engine

    async def run(self) -> None:
        attempt = 0
        while not self.engine.stopping:
            if not await self.engine.wait_for_broker():
                return
            try:
                clock = await self.engine.executor.market_clock()
                attempt = 0
            except AuthenticationRequiredError as exc:
                if self.engine.status.auth_required is None:
                    log.error("market clock: broker needs re-authorisation: %s", exc)
                self.engine.status.auth_required = str(exc)
                await asyncio.sleep(self.engine.config.hedging.clock_recheck)
                continue
            except BrokerError as exc:
                attempt += 1
                delay = backoff_delay(attempt, 1.0, self.engine.config.hedging.clock_recheck, self.engine.rng)
                log.warning("market clock unavailable (%s); asking again in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            if self.engine.status.auth_required is not None:
                self.engine.status.auth_required = None
                log.warning("broker authorised again; hedging resumes")
                self.engine.hedge_symbols(list(self.engine.books))
            was_open = self.engine.status.market_open
            self.engine.status.market_open = clock.is_open
            self.engine.status.market_checked_at = datetime.now(UTC)
            if clock.is_open and not was_open:
                log.info("market open: hedging enabled")
                self.engine.hedge_symbols(list(self.engine.books))
            elif was_open and not clock.is_open:
                log.info("market closed: fills keep accumulating, hedges wait for the open")
            change = clock.next_close if clock.is_open else clock.next_open
            delay = self.engine.config.hedging.clock_recheck
            if change is not None:
                until = (change - self.engine.now()).total_seconds()
                delay = max(0.5, min(delay, until + 0.5))
            await asyncio.sleep(delay)

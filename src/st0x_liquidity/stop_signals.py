"""SIGINT/SIGTERM for the whole of ``run``: the first stops gracefully, a second exits at once.

Installed once, for the process's lifetime, not per role: a standby that
takes over, or a leader stepping down, is between two sets of handlers for
a moment, and a signal then must neither kill the process unannounced nor
count as a second one.

The operator who signals again does not want to wait for a hung broker call
or node. Exiting without cleanup is as safe as a SIGKILL, which the store
and the recovery on start are built (and tested) for: every commit is atomic
and intents are looked up by ``client_order_id`` before anything is placed
again.

A stop that hangs anyway (a thread stuck in a driver, a task that ignores
cancellation) is bounded: ``grace`` seconds after the first signal every
thread's stack goes to stderr and the process exits 1, so the operator
learns where it hung rather than meeting a SIGKILL from systemd's
``TimeoutStopSec`` with no trace.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("st0x_liquidity.app")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopper:
    """Sets ``stop`` on the first signal and stops the engine running now, if any."""

    def __init__(self, stop: asyncio.Event, grace: float | None = None) -> None:
        self.stop = stop
        self.grace = grace
        """Seconds after the first signal before a stop that hangs is ended (None: never)."""
        self._engine: Engine | None = None

    def running(self, engine: Engine | None) -> None:
        """The engine a signal stops from now on (None: between roles, or a standby)."""
        self._engine = engine
        if engine is not None and self.stop.is_set():
            engine.request_stop()  # signalled before this engine existed

    def __call__(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            log.warning("%s received again: exiting now without waiting", sig.name)
            logging.shutdown()
            os._exit(128 + int(sig))
        if self._engine is not None:
            log.info(
                "%s received: stopping intake, finishing in-flight broker calls "
                "(signal again to exit at once)",
                sig.name,
            )
            self._engine.request_stop()
        else:
            log.info("%s received: stopping (signal again to exit at once)", sig.name)
        self.stop.set()
        if self.grace is not None:
            faulthandler.dump_traceback_later(self.grace, exit=True)

    @contextmanager
    def installed(self) -> Iterator[Stopper]:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self, sig)
        try:
            yield self
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)

"""The standby loop: wait for the lease, lead while it holds, step down when it is lost.

``run`` with a PostgreSQL database and ``[ha] standby = true`` (the default)
runs this instead of refusing when another process holds the lease:

1. open the store; if the lease is held, be a **standby**: serve the
   dashboard read-only and ask for the lease every ``standby_poll`` seconds;
2. once taken, be the **leader**: the ordinary run (recovery first: in-flight
   intents are looked up at the broker by ``client_order_id``, the source
   resumes from the durable cursor);
3. a leader that loses its lease (another holder took it, or it could not
   renew it in time), or whose database stops answering, **steps down in this
   process**: the engine stops (no broker call, no write: the store refuses
   both), and the loop starts again at 1 with a fresh store.

A stop (SIGINT/SIGTERM) or a finite source drained ends the loop; any other
failure ends it with that error, as a single ``run`` would.

This module knows nothing of the app's wiring (which imports it): the caller
hands it what to do as each role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..backoff import backoff_delay
from ..errors import StoreError
from .role import LEADER, STANDBY, Role

if TYPE_CHECKING:
    from ..store.postgres import PostgresStore

log = logging.getLogger("st0x_liquidity.ha")

_RNG = random.Random()
RETRY_MAX = 10.0
"""Most seconds between attempts to reach a database that stopped answering."""
STEADY = 60.0
"""Seconds in a role after which a failure counts as the first again (no backoff)."""


async def run_with_standby(
    role: Role,
    *,
    new_store: Callable[[], PostgresStore],
    stand_by: Callable[[PostgresStore], Awaitable[bool]],
    lead: Callable[[PostgresStore], Awaitable[None]],
    stop: asyncio.Event,
    pause: float,
) -> None:
    """Standby and leader in turn until ``stop`` is set or the leader's run ends.

    ``stand_by(store)`` serves as a standby until it takes the lease (True) or
    is stopped (False); ``lead(store)`` is the ordinary run. After a step-down or
    a database that stopped answering, the next try waits ``pause`` seconds (the
    standby's poll), doubling while it keeps failing, up to :data:`RETRY_MAX`.
    """
    attempt = 0
    started = False
    while not stop.is_set():
        store = new_store()
        began = time.monotonic()
        try:
            await store.open()
            started = True
            if store.epoch is None:
                role.become(STANDBY, _epoch(store), _following(store))
                if not await stand_by(store):
                    return
                attempt = 0
            role.become(LEADER, store.epoch, _took(store))
            began = time.monotonic()
            await lead(store)
            if store.lost is None or stop.is_set():
                return  # stopped, or a finite source drained
            role.become(STANDBY, role.epoch, f"stepped down: {store.lost}")
        except StoreError as exc:
            if not started or stop.is_set():
                raise  # a wrong URL or credentials at start: one line, as a single run
            if role.leader or store.lost is not None:  # led (it may have said so already)
                if store.lost is None and store.reachable:
                    raise  # neither the lease nor the database was lost: stop as a single run
                role.become(STANDBY, role.epoch, f"stepped down: {store.lost or exc}")
            else:
                log.error("standby: %s", exc)
        finally:
            await store.close()
        # Give another standby the first go, and back off while the database is away.
        attempt = 1 if time.monotonic() - began > STEADY else attempt + 1
        delay = backoff_delay(attempt, pause, RETRY_MAX, _RNG)
        log.info("trying the database again in %.1fs", delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


def _epoch(store: PostgresStore) -> int | None:
    return None if store.holder is None else store.holder.epoch


def _following(store: PostgresStore) -> str:
    holder = store.holder
    if holder is None:
        return f"waiting for the lease on {store.name}"
    return f"the leader is {holder.describe()}; waiting for its lease on {store.name}"


def _took(store: PostgresStore) -> str:
    return f"took the lease on {store.name}"


async def wait_for_lease(store: PostgresStore, role: Role, poll: float, stop: asyncio.Event) -> bool:
    """Ask for the lease every ``poll`` seconds: True once held, False when stopped.

    A :class:`StoreError` (the database stopped answering) ends the wait: the
    loop opens a fresh store, with backoff.
    """
    while not stop.is_set():
        if await store.try_take_lease():
            return True
        role.become(STANDBY, _epoch(store), _following(store))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll)
    return False

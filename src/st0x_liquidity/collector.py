"""Tune Python's garbage collector while an engine runs.

Ingesting a batch of 500 fills allocates tens of thousands of short-lived
container objects (events, rows, tuples). At the interpreter's default
first-generation threshold (700) the collector ran about fifteen times per
batch, each time promoting the batch's still-live objects to older
generations, whose collections then walk everything the process holds (open
lots, caches, a source's buffers). Measured on the ingestion benchmark, the
collector took about 30 % of the engine's CPU.

While at least one engine runs, objects that exist at its start are frozen
(moved out of the collector's sight: they are long-lived by construction) and
the first-generation threshold is raised, so a collection runs every few
batches and finds their garbage already gone. Reference counting frees
almost everything anyway; the collector is only for cycles. Settings are
restored when the last engine stops.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

FIRST_GENERATION_THRESHOLD = 20_000


class _Tuning:
    """How many engines run, and the settings to restore when none does."""

    users = 0
    saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def tuned_collector() -> Iterator[None]:
    if _Tuning.users == 0:
        saved = _Tuning.saved = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(FIRST_GENERATION_THRESHOLD, saved[1], saved[2])
    _Tuning.users += 1
    try:
        yield
    finally:
        _Tuning.users -= 1
        if _Tuning.users == 0 and _Tuning.saved is not None:
            gc.set_threshold(*_Tuning.saved)
            gc.unfreeze()
            _Tuning.saved = None

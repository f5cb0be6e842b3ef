"""Capped exponential backoff with full jitter (pure, so tests can check it)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1-based): uniform in [base/2, min(cap, base*2^(n-1))]."""
    if attempt < 1 or base <= 0:
        return 0.0
    ceiling = min(cap, base * (2 ** min(attempt - 1, 30)))
    return rng.uniform(min(base, ceiling) / 2, ceiling)

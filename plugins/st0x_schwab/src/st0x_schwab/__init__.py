"""Charles Schwab Trader API executor plugin for st0x-liquidity."""

from __future__ import annotations

__version__ = "0.1.0"

"""st0x-alpaca-broker: the Alpaca Broker API executor plugin for st0x-liquidity.

HTTP/JSON plumbing comes from ``st0x-alpaca`` (:mod:`st0x_alpaca.http`,
:mod:`st0x_alpaca.wire`); this package adds Basic auth, the account-scoped
paths and the calendar-based market clock.
"""

from __future__ import annotations

from .client import AlpacaBrokerClient
from .executor import BASE_URLS, AlpacaBrokerConfig, AlpacaBrokerExecutor

__version__ = "0.1.0"

__all__ = [
    "BASE_URLS",
    "AlpacaBrokerClient",
    "AlpacaBrokerConfig",
    "AlpacaBrokerExecutor",
    "__version__",
]

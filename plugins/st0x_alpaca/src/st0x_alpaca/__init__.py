"""st0x-alpaca: the Alpaca Trading API executor plugin for st0x-liquidity.

The HTTP/JSON plumbing here (:mod:`st0x_alpaca.http`, :mod:`st0x_alpaca.wire`,
:mod:`st0x_alpaca.api`, :mod:`st0x_alpaca.common`) is shared with the
``st0x-alpaca-broker`` plugin, which depends on this distribution.
"""

from __future__ import annotations

from .common import AlpacaCommonConfig, AlpacaExecutorBase, order_body
from .executor import BASE_URLS, AlpacaTradingConfig, AlpacaTradingExecutor
from .http import AlpacaHttp, AlpacaNotFound, AlpacaRejection, HttpSettings, RequestKind
from .wire import MalformedReplyError, order_update, parse_order

__version__ = "0.1.0"

__all__ = [
    "BASE_URLS",
    "AlpacaCommonConfig",
    "AlpacaExecutorBase",
    "AlpacaHttp",
    "AlpacaNotFound",
    "AlpacaRejection",
    "AlpacaTradingConfig",
    "AlpacaTradingExecutor",
    "HttpSettings",
    "MalformedReplyError",
    "RequestKind",
    "__version__",
    "order_body",
    "order_update",
    "parse_order",
]

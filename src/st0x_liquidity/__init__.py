"""st0x-liquidity: hedge Raindex tokenized-equity fills at a brokerage, exactly once.

This module's ``__all__`` is the public API. Plugins import from here, from
:mod:`st0x_liquidity.protocols`, from :mod:`st0x_liquidity.hookspecs` and from
:mod:`st0x_liquidity.validators` (config validators; its ``__all__``) only.
"""

from __future__ import annotations

from .config import AppConfig, Secret, load_config, make_converter
from .domain.fills import Direction, Fill, InvalidFillError, TradeId
from .domain.numbers import EXACT, fmt, round_down, to_decimal
from .domain.orders import (
    HedgeOrder,
    LimitOrder,
    MarketClock,
    MarketOrder,
    OrderRules,
    OrderState,
    OrderUpdate,
)
from .domain.sessions import (
    Session,
    SessionWindow,
    SymbolEligibility,
    TradingDay,
    limit_tick,
    round_limit,
    session_at,
    session_windows,
)
from .domain.symbols import InvalidSymbolError, Symbol, base_ticker, is_tokenized_equity
from .errors import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    BrokerError,
    ConfigError,
    FinalBrokerError,
    NotSupportedError,
    RetryableBrokerError,
    St0xError,
)
from .hookspecs import hookimpl
from .plugins import load_registry
from .protocols import (
    CashConversion,
    CheckpointItem,
    ConversionCanceller,
    Cursor,
    Custodian,
    Executor,
    ExtendedHoursExecutor,
    FillItem,
    FillSource,
    Inventory,
    Position,
    PositionStore,
    RevertedItem,
    SkippedItem,
    SourceItem,
    TokenizationRequest,
    UsdcCustodian,
    WalletTransfer,
)
from .registry import ConfigSection, ExecutorContext, ExecutorType, FillSourceType
from .services import AppServices, EngineControl

__version__ = "0.1.0"


def open_store(config: AppConfig) -> PositionStore:
    """The store of ``config``'s database, for plugin commands (e.g. ``schwab auth``).

    Call ``await store.open()`` before use and ``await store.close()`` after.
    """
    from .app import open_store as _open_store

    return _open_store(config)


__all__ = [
    "AppServices",
    "EngineControl",
    "AmbiguousBrokerError",
    "AppConfig",
    "AuthenticationRequiredError",
    "BrokerError",
    "CheckpointItem",
    "ConfigError",
    "ConfigSection",
    "Cursor",
    "CashConversion",
    "ConversionCanceller",
    "Custodian",
    "Direction",
    "EXACT",
    "Executor",
    "ExecutorContext",
    "ExtendedHoursExecutor",
    "ExecutorType",
    "Fill",
    "FillItem",
    "FillSource",
    "FillSourceType",
    "FinalBrokerError",
    "HedgeOrder",
    "InvalidFillError",
    "InvalidSymbolError",
    "Inventory",
    "LimitOrder",
    "MarketClock",
    "MarketOrder",
    "NotSupportedError",
    "OrderRules",
    "OrderState",
    "OrderUpdate",
    "Position",
    "PositionStore",
    "RetryableBrokerError",
    "RevertedItem",
    "Secret",
    "Session",
    "SessionWindow",
    "SkippedItem",
    "SourceItem",
    "St0xError",
    "Symbol",
    "SymbolEligibility",
    "TradingDay",
    "TokenizationRequest",
    "UsdcCustodian",
    "WalletTransfer",
    "TradeId",
    "__version__",
    "base_ticker",
    "fmt",
    "hookimpl",
    "is_tokenized_equity",
    "limit_tick",
    "load_config",
    "load_registry",
    "make_converter",
    "open_store",
    "round_down",
    "round_limit",
    "session_at",
    "session_windows",
    "to_decimal",
]

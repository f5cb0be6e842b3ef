"""The ``alpaca-trading-api`` executor: individual Alpaca accounts (Trading API v2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import attrs

from st0x_liquidity import MarketClock

from .api import AlpacaTradingEndpoints
from .common import AlpacaCommonConfig, AlpacaExecutorBase
from .http import AlpacaHttp, RequestKind
from .wire import parse_clock

BASE_URLS = {
    "paper": "https://paper-api.alpaca.markets",
    "live": "https://api.alpaca.markets",
}


@attrs.frozen(kw_only=True)
class AlpacaTradingConfig(AlpacaCommonConfig):
    """``[broker] type = "alpaca-trading-api"``.

    ``mode`` picks the documented base URL (paper keys only work on paper);
    ``base_url`` overrides it (tests, proxies). ``trading_mode`` is accepted as
    the reference system's spelling of ``mode``.
    """

    mode: Literal["paper", "live"] = "paper"
    trading_mode: Literal["paper", "live"] | None = None

    @property
    def effective_mode(self) -> str:
        return self.trading_mode or self.mode

    def resolved_base_url(self) -> str:
        return self.base_url or BASE_URLS[self.effective_mode]


class AlpacaTradingExecutor(AlpacaExecutorBase):
    """Hedges through ``/v2/orders``; market hours from ``/v2/clock``."""

    name = "alpaca-trading-api"

    def __init__(
        self,
        config: AlpacaTradingConfig,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        key, secret = config.api_key, config.api_secret
        http = AlpacaHttp(
            config.http_settings(config.resolved_base_url()),
            lambda: {"APCA-API-KEY-ID": key.get(), "APCA-API-SECRET-KEY": secret.get()},
            secrets=(key.get(), secret.get()),
        )
        super().__init__(
            config, http=http, endpoints=AlpacaTradingEndpoints(http, "/v2"), now=now
        )

    async def market_clock(self) -> MarketClock:
        reply = await self.http.request("GET", "/v2/clock", kind=RequestKind.READ, what="get clock")
        return parse_clock(reply.data)

"""The ``alpaca-broker-api`` executor: a managed account under a Broker API partner."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import attrs
from st0x_alpaca.common import AlpacaCommonConfig, AlpacaExecutorBase
from st0x_alpaca.wire import (
    CALENDAR_LOOKAHEAD,
    clock_from_calendar,
    new_york_today,
    parse_positions,
)

from st0x_liquidity import Inventory, MarketClock

from .client import AlpacaBrokerClient
from .wallet_wire import usdc_position

BASE_URLS = {
    "sandbox": "https://broker-api.sandbox.alpaca.markets",
    "production": "https://broker-api.alpaca.markets",
}


def _uuid(_i: object, attr: attrs.Attribute[str], value: str) -> None:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{attr.name} must be the account's UUID") from None


@attrs.frozen(kw_only=True)
class AlpacaBrokerConfig(AlpacaCommonConfig):
    """``[broker] type = "alpaca-broker-api"``: partner keys plus the traded account."""

    account_id: str = attrs.field(validator=_uuid)
    mode: Literal["sandbox", "production"] = "sandbox"

    def resolved_base_url(self) -> str:
        return self.base_url or BASE_URLS[self.mode]


class AlpacaBrokerExecutor(AlpacaExecutorBase):
    """Hedges through ``/v1/trading/accounts/{id}/orders``; hours from ``/v1/calendar``."""

    name = "alpaca-broker-api"

    def __init__(
        self,
        config: AlpacaBrokerConfig,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        account_id = str(uuid.UUID(config.account_id))
        self.client = AlpacaBrokerClient(
            config.http_settings(config.resolved_base_url()),
            config.api_key,
            config.api_secret,
            account_id,
        )
        super().__init__(config, http=self.client.http, endpoints=self.client.trading, now=now)

    async def market_clock(self) -> MarketClock:
        now = self._now()
        today = new_york_today(now)
        days = await self.client.calendar(today, today + CALENDAR_LOOKAHEAD)
        return clock_from_calendar(days, now)

    async def inventory(self) -> Inventory:
        """Equity positions, and as ``cash`` the account's USDC-equivalent money:
        USD cash plus the USDC held (the ``USDCUSD`` crypto position, counted 1:1).

        The rebalancer reads ``cash`` as the offchain USDC amount; a conversion
        between the two then moves nothing in its books. The split is
        :meth:`~st0x_alpaca_broker.usdc.UsdcCustody.balances`.
        """
        raw = await self.client.positions_json()
        positions = parse_positions(raw)
        usdc = usdc_position(raw)
        account = await self.endpoints.get_account()
        return Inventory(positions=positions.equities, cash=account.cash + usdc, as_of=self._now())

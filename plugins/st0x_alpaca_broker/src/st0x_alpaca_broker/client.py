"""The Broker API client: one session, HTTP Basic auth, account-scoped paths.

Trading endpoints live under ``/v1/trading/accounts/{account_id}``; market
hours come from ``/v1/calendar``. Rebalancing (a later release) adds the
wallet (``/v1/accounts/{id}/wallets/...``), journal (``/v1/journals``) and
tokenization (``/v1/accounts/{id}/tokenization/...``) endpoints as further
methods on this class, over the same :class:`~st0x_alpaca.http.AlpacaHttp` (so
they share its rate limiter and the ``X-RateLimit-*`` budget Alpaca grants per
partner).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date

from st0x_alpaca.api import AlpacaTradingEndpoints, get_calendar
from st0x_alpaca.http import AlpacaHttp, HttpSettings
from st0x_alpaca.wire import TradingDay

from st0x_liquidity import Secret


def basic_auth_header(key: Secret, secret: Secret) -> Mapping[str, str]:
    token = base64.b64encode(f"{key.get()}:{secret.get()}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


class AlpacaBrokerClient:
    """Typed access to the Broker API for one account."""

    def __init__(
        self, settings: HttpSettings, key: Secret, secret: Secret, account_id: str
    ) -> None:
        token_headers = basic_auth_header(key, secret)
        self.account_id = account_id
        self.http = AlpacaHttp(
            settings,
            lambda: token_headers,
            secrets=(key.get(), secret.get(), token_headers["Authorization"].split()[1]),
        )
        self.trading = AlpacaTradingEndpoints(self.http, f"/v1/trading/accounts/{account_id}")

    async def calendar(self, start: date, end: date) -> list[TradingDay]:
        return await get_calendar(self.http, "/v1/calendar", start, end)

    async def close(self) -> None:
        await self.http.close()

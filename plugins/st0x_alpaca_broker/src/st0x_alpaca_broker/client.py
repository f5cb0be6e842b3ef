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
from decimal import Decimal
from typing import Any

from st0x_alpaca.api import AlpacaTradingEndpoints, get_calendar
from st0x_alpaca.http import AlpacaHttp, HttpSettings, RequestKind
from st0x_alpaca.wire import TradingDay

from st0x_liquidity import Secret, fmt


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

    # -- tokenization (rebalancing) ------------------------------------------------

    async def tokenization_mint(
        self,
        symbol: str,
        qty: Decimal,
        wallet: str,
        *,
        issuer: str,
        network: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """``POST /v1/accounts/{id}/tokenization/mint`` with an ``Idempotency-Key``.

        Sent again with the same key, Alpaca returns the request the first call
        created; so an ambiguous failure may be retried with the same key.
        """
        reply = await self.http.request(
            "POST",
            f"/v1/accounts/{self.account_id}/tokenization/mint",
            kind=RequestKind.ORDER,
            json_body={
                "underlying_symbol": symbol,
                "qty": fmt(qty),
                "issuer": issuer,
                "network": network,
                "wallet_address": wallet,
            },
            headers={"Idempotency-Key": idempotency_key},
            what="tokenization mint",
        )
        if not isinstance(reply.data, dict):
            raise ValueError("tokenization mint: answer is not an object")
        return reply.data

    async def tokenization_requests(
        self, *, kind: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """``GET /v1/accounts/{id}/tokenization/requests`` (optionally by type/status)."""
        params = {k: v for k, v in (("type", kind), ("status", status)) if v}
        reply = await self.http.request(
            "GET",
            f"/v1/accounts/{self.account_id}/tokenization/requests",
            params=params,
            what="tokenization requests",
        )
        if not isinstance(reply.data, list):
            raise ValueError("tokenization requests: answer is not a list")
        return [r for r in reply.data if isinstance(r, dict)]

    async def close(self) -> None:
        await self.http.close()

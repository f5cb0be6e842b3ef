"""The Broker API client: one session, HTTP Basic auth, account-scoped paths.

Trading endpoints live under ``/v1/trading/accounts/{account_id}`` (hedges
and the ``USDCUSD`` conversion orders); market hours come from
``/v1/calendar``. Rebalancing adds the crypto wallet
(``/v1/accounts/{id}/wallets/...``) and tokenization
(``/v1/accounts/{id}/tokenization/...``) endpoints as further methods on this
class, all with the same Basic auth, over the same :class:`~st0x_alpaca.http.AlpacaHttp` (so
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
        self.trading = AlpacaTradingEndpoints(
            self.http,
            f"/v1/trading/accounts/{account_id}",
            assets_path="/v1/assets",
            calendar_path="/v1/calendar",
        )

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

    # -- crypto wallet (USDC rebalancing) ------------------------------------------------

    def _wallets(self, tail: str = "") -> str:
        return f"/v1/accounts/{self.account_id}/wallets{tail}"

    async def wallet_whitelists(self) -> Any:
        """``GET /v1/accounts/{id}/wallets/whitelists`` (raw JSON)."""
        reply = await self.http.request("GET", self._wallets("/whitelists"), what="list whitelist")
        return reply.data

    async def add_wallet_whitelist(self, address: str, asset: str) -> Any:
        """``POST …/wallets/whitelists {address, asset}``: one entry, normally ``PENDING``."""
        reply = await self.http.request(
            "POST",
            self._wallets("/whitelists"),
            kind=RequestKind.ORDER,
            json_body={"address": address, "asset": asset},
            what=f"whitelist {address}",
        )
        return reply.data

    async def wallet_withdraw(self, amount: str, asset: str, address: str) -> Any:
        """``POST …/wallets/transfers {amount, asset, address}``: one OUTGOING transfer.

        No idempotency key exists here, so a timeout or 5xx is ambiguous (the
        transport never re-sends it); the caller looks in :meth:`wallet_transfers`.
        """
        reply = await self.http.request(
            "POST",
            self._wallets("/transfers"),
            kind=RequestKind.ORDER,
            json_body={"amount": amount, "asset": asset, "address": address},
            what=f"withdraw {amount} {asset} to {address}",
        )
        return reply.data

    async def wallet_transfers(self) -> Any:
        """``GET …/wallets/transfers``: every transfer (filtered client-side by callers)."""
        reply = await self.http.request("GET", self._wallets("/transfers"), what="list transfers")
        return reply.data

    async def wallet_address(self, asset: str, network: str) -> Any:
        """``GET …/wallets?asset=…&network=…``: the deposit wallet ``{asset_id, address, …}``."""
        reply = await self.http.request(
            "GET",
            self._wallets(),
            params={"asset": asset, "network": network},
            what=f"{asset} deposit address",
        )
        return reply.data

    async def positions_json(self) -> Any:
        """``GET /v1/trading/accounts/{id}/positions`` unparsed (crypto rows included)."""
        reply = await self.http.request(
            "GET", f"{self.trading.prefix}/positions", what="list positions"
        )
        return reply.data

    async def cancel_order(self, order_id: str) -> None:
        """``DELETE /v1/trading/accounts/{id}/orders/{order_id}``: 204 when the cancel is
        accepted; 422 (``AlpacaRejection``) when the order is no longer cancelable,
        404 (``AlpacaNotFound``) when there is no such order. Safe to send again."""
        await self.http.request(
            "DELETE", f"{self.trading.prefix}/orders/{order_id}", what=f"cancel order {order_id}"
        )

    async def close(self) -> None:
        await self.http.close()

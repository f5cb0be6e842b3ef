"""Typed calls to Alpaca's account-scoped trading endpoints (shared by both APIs).

The Trading API serves them under ``/v2``; the Broker API serves the same
objects under ``/v1/trading/accounts/{account_id}``. Subclasses add what only
one API has (the Trading API's ``/v2/clock``; the Broker API's calendar and, in
a later release, its wallet, journal and tokenization endpoints) on the same
:class:`~st0x_alpaca.http.AlpacaHttp`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import quote

from st0x_liquidity import FinalBrokerError

from .http import AlpacaHttp, AlpacaNotFound, RequestKind
from .wire import (
    AlpacaAccount,
    AlpacaOrder,
    Positions,
    TradingDay,
    parse_account,
    parse_calendar,
    parse_order,
    parse_positions,
)


def check_order_id(order_id: str) -> str:
    """Alpaca order ids are UUIDs; anything else never reaches a URL path."""
    try:
        return str(uuid.UUID(order_id))
    except (ValueError, TypeError, AttributeError):
        raise FinalBrokerError(f"not an Alpaca order id (expected a UUID): {order_id!r}") from None


class AlpacaTradingEndpoints:
    """Orders, positions and account under one path prefix."""

    def __init__(
        self,
        http: AlpacaHttp,
        prefix: str,
        *,
        assets_path: str = "/v2/assets",
        calendar_path: str = "/v2/calendar",
    ) -> None:
        self.http = http
        self.prefix = prefix.rstrip("/")
        self.assets_path = assets_path
        self.calendar_path = calendar_path

    async def get_account(self) -> AlpacaAccount:
        reply = await self.http.request("GET", f"{self.prefix}/account", what="get account")
        return parse_account(reply.data)

    async def submit_order(self, body: Mapping[str, Any]) -> AlpacaOrder:
        reply = await self.http.request(
            "POST",
            f"{self.prefix}/orders",
            kind=RequestKind.ORDER,
            json_body=body,
            what=f"place order {body.get('client_order_id', '')}".strip(),
        )
        return parse_order(reply.data)

    async def get_order(self, order_id: str) -> AlpacaOrder:
        order_id = check_order_id(order_id)
        reply = await self.http.request(
            "GET", f"{self.prefix}/orders/{order_id}", what=f"get order {order_id}"
        )
        return parse_order(reply.data)

    async def get_order_by_client_id(self, client_order_id: str) -> AlpacaOrder | None:
        try:
            reply = await self.http.request(
                "GET",
                f"{self.prefix}/orders:by_client_order_id",
                params={"client_order_id": client_order_id},
                what=f"find order {client_order_id}",
            )
        except AlpacaNotFound:
            return None
        return parse_order(reply.data)

    async def cancel_order(self, order_id: str) -> None:
        """``DELETE …/orders/{id}``: 204 accepted; 422 (``AlpacaRejection``) when the order
        is no longer cancelable; 404 (``AlpacaNotFound``). Safe to send again."""
        order_id = check_order_id(order_id)
        await self.http.request(
            "DELETE", f"{self.prefix}/orders/{order_id}", what=f"cancel order {order_id}"
        )

    async def get_position_json(self, symbol: str) -> Any | None:
        """``GET …/positions/{symbol}``; None when no position is held (404)."""
        try:
            reply = await self.http.request(
                "GET", f"{self.prefix}/positions/{quote(symbol, safe='')}",
                what=f"get position {symbol}",
            )
        except AlpacaNotFound:
            return None
        return reply.data

    async def get_asset_json(self, symbol: str) -> Any | None:
        """``GET /v2/assets/{symbol}`` (Broker API: ``/v1/assets``); None when unknown (404)."""
        try:
            reply = await self.http.request(
                "GET", f"{self.assets_path}/{quote(symbol, safe='')}", what=f"get asset {symbol}"
            )
        except AlpacaNotFound:
            return None
        return reply.data

    async def get_configurations_json(self) -> Any:
        reply = await self.http.request(
            "GET", f"{self.prefix}/account/configurations", what="get account configuration"
        )
        return reply.data

    async def get_calendar_json(self, start: date, end: date) -> Any:
        reply = await self.http.request(
            "GET",
            self.calendar_path,
            params={"start": start.isoformat(), "end": end.isoformat()},
            what="get calendar",
        )
        return reply.data

    async def get_positions(self) -> Positions:
        reply = await self.http.request("GET", f"{self.prefix}/positions", what="list positions")
        return parse_positions(reply.data)


async def get_calendar(http: AlpacaHttp, path: str, start: date, end: date) -> list[TradingDay]:
    reply = await http.request(
        "GET",
        path,
        params={"start": start.isoformat(), "end": end.isoformat()},
        what="get calendar",
    )
    return parse_calendar(reply.data)

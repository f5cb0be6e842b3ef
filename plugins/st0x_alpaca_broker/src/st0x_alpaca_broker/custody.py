"""The Alpaca Broker API as a :class:`~st0x_liquidity.Custodian` (tokenization API).

Mint: ``POST /v1/accounts/{id}/tokenization/mint`` with an ``Idempotency-Key``
(Alpaca documents it for this endpoint). A 403 whose message mentions an
insufficient position is final; so is any other 4xx. Requests are read from
``GET …/tokenization/requests`` and matched by id (one request) or by
``tx_hash`` (the redeem request Alpaca opens for our transfer to the
redemption wallet).

The same object is the :class:`~st0x_liquidity.UsdcCustodian` (USD<->USDC
conversion, wallet whitelist, withdrawals, transfers, deposit address): see
:mod:`st0x_alpaca_broker.usdc`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from st0x_liquidity import Symbol, TokenizationRequest, to_decimal

from .client import AlpacaBrokerClient
from .usdc import UsdcCustody


def parse_request(data: dict[str, Any]) -> TokenizationRequest:
    tx_hash = data.get("tx_hash") or None
    return TokenizationRequest(
        request_id=str(data["tokenization_request_id"]),
        kind=str(data.get("type") or "mint"),
        status=str(data["status"]),
        symbol=Symbol.parse(str(data["underlying_symbol"])),
        quantity=to_decimal(data["qty"], what="tokenization qty"),
        tx_hash=str(tx_hash).lower() if tx_hash else None,
        wallet=data.get("wallet_address"),
    )


class AlpacaCustodian(UsdcCustody):
    """Tokenization (``Custodian``) and USDC custody (``UsdcCustodian``) of one account."""

    def __init__(
        self,
        client: AlpacaBrokerClient,
        *,
        issuer: str,
        network: str,
        usdc_network: str = "ethereum",
    ) -> None:
        self.client = client
        self.issuer = issuer
        self.network = network
        self.usdc_network = usdc_network

    async def request_mint(
        self, symbol: Symbol, quantity: Decimal, wallet: str, idempotency_key: str
    ) -> TokenizationRequest:
        data = await self.client.tokenization_mint(
            str(symbol),
            quantity,
            wallet,
            issuer=self.issuer,
            network=self.network,
            idempotency_key=idempotency_key,
        )
        return parse_request(data)

    async def tokenization_request(self, request_id: str) -> TokenizationRequest | None:
        for data in await self.client.tokenization_requests():
            if str(data.get("tokenization_request_id")) == request_id:
                return parse_request(data)
        return None

    async def find_redemption(self, tx_hash: str) -> TokenizationRequest | None:
        for data in await self.client.tokenization_requests(kind="redeem"):
            if str(data.get("tx_hash") or "").lower() == tx_hash.lower():
                return parse_request(data)
        return None

    async def close(self) -> None:
        await self.client.close()

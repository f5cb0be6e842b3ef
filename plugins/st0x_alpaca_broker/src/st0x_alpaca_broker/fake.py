"""A fake Alpaca Broker API server, built on :class:`st0x_alpaca.fake.FakeAlpacaBase`.

Serves the account-scoped trading endpoints under
``/v1/trading/accounts/{account_id}/...`` (HTTP Basic auth with the partner
key and secret), ``/v1/calendar`` and ``/v1/clock``. An unknown account id gets
404 ``40410000``. Every response carries ``X-RateLimit-Limit`` /
``X-RateLimit-Remaining`` / ``X-RateLimit-Reset``, which the Broker API uses to
publish its per-partner budget.

Tokenization (``/v1/accounts/{account_id}/tokenization/mint`` and
``…/requests``) follows the documented shapes: a mint debits the position at
once (403 "insufficient position" otherwise), honours ``Idempotency-Key`` and
completes after ``mint_delay`` by calling ``mint_tokens`` (a test wires it to
mint real tokens on anvil) or is rejected (``reject_mints``, the shares come
back). ``watch_redemptions`` (a callable listing transfers that reached the
redemption wallet) is polled while the fake runs; each new transfer opens a
``redeem`` request with its ``tx_hash`` that completes after ``redeem_delay``
(crediting the position) or is rejected (``reject_redemptions``).

USDC (``USDCUSD`` conversions, whitelist, withdrawals with real onchain
transfers through ``send_usdc``, deposits found by ``watch_deposits``, the
deposit address) comes from :class:`~st0x_alpaca_broker.fake_wallet.FakeUsdcWallet`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from st0x_alpaca.fake import serve

from .fake_wallet import FakeUsdcWallet

ACCOUNT_ID = "5fc0795e-1f16-40cc-aa90-ede67c39d7a9"

Handler = Callable[[web.Request], Awaitable[web.Response]]
MintTokens = Callable[[str, Decimal, str], Awaitable[str]]
"""(symbol, qty, wallet) -> tx hash of the onchain mint."""
WatchRedemptions = Callable[[], Awaitable[list[tuple[str, str, Decimal]]]]
"""-> (tx hash, symbol, qty) of every transfer that reached the redemption wallet."""


class FakeAlpacaBroker(FakeUsdcWallet):
    """The Broker API with Basic auth and one managed account."""

    api_name = "alpaca-broker-api"

    def __init__(
        self,
        key: str = "CKTEST",
        secret: str = "broker-secret-test",
        account_id: str = ACCOUNT_ID,
        **kwargs: Any,
    ) -> None:
        self.key = key
        self.secret = secret
        self.account_id = account_id
        self.tokenization: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, str] = {}
        self.mint_posts = 0
        self.mint_delay = 0.2
        self.redeem_delay = 0.2
        self.reject_mints = False
        self.reject_redemptions = False
        self.mint_tokens: MintTokens | None = None
        self.watch_redemptions: WatchRedemptions | None = None
        super().__init__(**kwargs)

    def authenticate(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        key, sep, secret = decoded.partition(":")
        return bool(sep) and key == self.key and secret == self.secret

    def account_json(self) -> dict[str, Any]:
        data = super().account_json()
        data.update(
            {
                "id": self.account_id,
                "account_number": "684486106",
                "cash_withdrawable": data["cash"],
                "cash_transferable": data["cash"],
                "previous_close": "2022-04-13T20:00:00-04:00",
                "clearing_broker": "VELOX",
            }
        )
        equity = Decimal(data["equity"]) + self.usdc * self.conversion_price
        text = format(equity, "f")
        data.update(equity=text, portfolio_value=text, last_equity=text)
        return data

    def _scoped(self, handler: Handler) -> Handler:
        async def scoped(request: web.Request) -> web.Response:
            if request.match_info["account_id"] != self.account_id:
                return web.json_response(
                    {"code": 40410000, "message": "account not found"}, status=404
                )
            return await handler(request)

        return scoped

    # -- tokenization -------------------------------------------------------------

    async def start(self, port: int = 0) -> FakeAlpacaBroker:
        await super().start(port)
        if self.watch_redemptions is not None:
            self._spawn(self._watch())
        return self

    def _request_json(self, kind: str, symbol: str, qty: Decimal, **extra: Any) -> dict[str, Any]:
        now = self.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        data: dict[str, Any] = {
            "tokenization_request_id": str(uuid.uuid4()),
            "type": kind,
            "status": "pending",
            "underlying_symbol": symbol,
            "token_symbol": f"t{symbol}",
            "qty": str(qty),
            "issuer": "st0x",
            "network": "base",
            "issuer_request_id": str(uuid.uuid4()),
            "created_at": now,
            "updated_at": now,
        }
        data.update(extra)
        self.tokenization[data["tokenization_request_id"]] = data
        return data

    async def handle_mint(self, request: web.Request) -> web.Response:
        self.mint_posts += 1
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotency:
            return web.json_response(self.tokenization[self.idempotency[key]])
        try:
            body = await request.json()
            symbol = str(body["underlying_symbol"])
            qty = Decimal(str(body["qty"]))
            wallet = str(body["wallet_address"])
        except (ValueError, KeyError, TypeError, InvalidOperation):
            return web.json_response({"code": 42210000, "message": "invalid request"}, status=422)
        if not qty.is_finite() or qty <= 0:
            return web.json_response({"code": 42210000, "message": "qty must be > 0"}, status=422)
        held = self.positions.get(symbol, Decimal(0))
        if qty > held:
            return web.json_response(
                {"code": 40310000, "message": "insufficient position to tokenize"}, status=403
            )
        self.positions[symbol] = held - qty
        data = self._request_json("mint", symbol, qty, wallet_address=wallet)
        if key:
            self.idempotency[key] = data["tokenization_request_id"]
        self._spawn(self._finish_mint(data, wallet))
        return web.json_response(data)

    async def _finish_mint(self, data: dict[str, Any], wallet: str) -> None:
        await asyncio.sleep(self.mint_delay)
        symbol, qty = data["underlying_symbol"], Decimal(data["qty"])
        if self.reject_mints or self.mint_tokens is None:
            data["status"] = "rejected"
            self.positions[symbol] = self.positions.get(symbol, Decimal(0)) + qty
        else:
            data["tx_hash"] = await self.mint_tokens(symbol, qty, wallet)
            data["status"] = "completed"
        data["updated_at"] = self.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    async def _watch(self) -> None:
        assert self.watch_redemptions is not None
        seen = {d.get("tx_hash") for d in self.tokenization.values()}
        while True:
            with contextlib.suppress(Exception):
                for tx_hash, symbol, qty in await self.watch_redemptions():
                    if tx_hash in seen:
                        continue
                    seen.add(tx_hash)
                    data = self._request_json("redeem", symbol, qty, tx_hash=tx_hash)
                    self._spawn(self._finish_redeem(data))
            await asyncio.sleep(self.watch_interval)

    async def _finish_redeem(self, data: dict[str, Any]) -> None:
        await asyncio.sleep(self.redeem_delay)
        if self.reject_redemptions:
            data["status"] = "rejected"
        else:
            symbol, qty = data["underlying_symbol"], Decimal(data["qty"])
            self.positions[symbol] = self.positions.get(symbol, Decimal(0)) + qty
            data["status"] = "completed"
        data["updated_at"] = self.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    async def handle_tokenization_requests(self, request: web.Request) -> web.Response:
        rows = list(self.tokenization.values())
        for field, param in (
            ("type", "type"),
            ("status", "status"),
            ("underlying_symbol", "underlying_symbol"),
        ):
            wanted = request.query.get(param)
            if wanted:
                rows = [r for r in rows if r.get(field) == wanted]
        return web.json_response(rows)

    def _add_routes(self, app: web.Application) -> None:
        tokenization = "/v1/accounts/{account_id}/tokenization"
        app.router.add_post(f"{tokenization}/mint", self._scoped(self.handle_mint))
        app.router.add_get(
            f"{tokenization}/requests", self._scoped(self.handle_tokenization_requests)
        )
        base = "/v1/trading/accounts/{account_id}"
        app.router.add_get(f"{base}/account", self._scoped(self.handle_account))
        app.router.add_post(f"{base}/orders", self._scoped(self.handle_post_order))
        app.router.add_get(
            f"{base}/orders:by_client_order_id", self._scoped(self.handle_get_by_client_id)
        )
        app.router.add_get(f"{base}/orders/{{order_id}}", self._scoped(self.handle_get_order))
        app.router.add_get(f"{base}/positions", self._scoped(self.handle_positions))
        self._add_wallet_routes(app, self._scoped)
        app.router.add_get("/v1/calendar", self.handle_calendar)
        app.router.add_get("/v1/clock", self.handle_clock)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Fake Alpaca Broker API for demos and tests")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--key", default="CKTEST")
    parser.add_argument("--secret", default="broker-secret-test")
    parser.add_argument("--account-id", default=ACCOUNT_ID)
    parser.add_argument("--closed", action="store_true", help="market closed")
    parser.add_argument("--deposit-address", default=None, help="USDC deposit address")
    parser.add_argument("--usdc", default="0", help="USDC held at start")
    args = parser.parse_args(argv)
    extra = {"deposit_address": args.deposit_address} if args.deposit_address else {}
    fake = FakeAlpacaBroker(
        key=args.key,
        secret=args.secret,
        account_id=args.account_id,
        market_open=not args.closed,
        **extra,
    )
    fake.usdc = Decimal(args.usdc)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(fake, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

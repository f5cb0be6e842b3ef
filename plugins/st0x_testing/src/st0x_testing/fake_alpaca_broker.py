"""A fake Alpaca Broker API server, built on :class:`st0x_testing.fake_alpaca.FakeAlpacaBase`.

Serves the account-scoped trading endpoints under
``/v1/trading/accounts/{account_id}/...`` (HTTP Basic auth with the partner
key and secret), ``/v1/calendar`` and ``/v1/clock``. An unknown account id gets
404 ``40410000``. Every response carries ``X-RateLimit-Limit`` /
``X-RateLimit-Remaining`` / ``X-RateLimit-Reset``, which the Broker API uses to
publish its per-partner budget.

Tokenization (``/v1/accounts/{account_id}/tokenization/mint`` and
``…/requests``) follows the documented shapes: a mint debits the position at
once (400 "insufficient position" otherwise), requires the documented fields
(``issuer`` and ``network`` from Alpaca's enums; 422 otherwise), honours
``Idempotency-Key`` (same key and body: the original request; another body: 422) and
completes after ``mint_delay`` by calling ``mint_tokens`` (a test wires it to
mint real tokens on anvil) or is rejected (``reject_mints``, the shares come
back). ``watch_redemptions`` (a callable listing transfers that reached the
redemption wallet) is polled while the fake runs; each new transfer opens a
``redeem`` request with its ``tx_hash`` that completes after ``redeem_delay``
(crediting the position) or is rejected (``reject_redemptions``).

USDC (``USDCUSD`` conversions, whitelist, withdrawals with real onchain
transfers through ``send_usdc``, deposits found by ``watch_deposits``, the
deposit address) comes from :class:`~st0x_testing.fake_alpaca_wallet.FakeUsdcWallet`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from st0x_testing.fake_alpaca import serve

from .fake_alpaca_wallet import FakeUsdcWallet, _err

ACCOUNT_ID = "5fc0795e-1f16-40cc-aa90-ede67c39d7a9"
ISSUERS = frozenset({"xstocks", "st0x", "ondo"})
"""``TokenizationIssuer`` values in Alpaca's reference and changelog (2026)."""
NETWORKS = frozenset(
    {
        "solana", "arbitrum", "ethereum", "binance", "base", "ton", "tron", "mantle",
        "cronos", "hyperevm", "robinhood", "hypercore",
    }
)
"""``TokenizationNetwork`` values named in Alpaca's reference and changelog (the
enum has more; ``FakeAlpacaBroker.networks`` can be extended)."""

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
        self.idempotency: dict[str, tuple[Any, str | None]] = {}
        """Idempotency-Key -> (request body, the request it created or None if refused)."""
        self.issuers: set[str] = set(ISSUERS)
        self.networks: set[str] = set(NETWORKS)
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
        # The previous close's figures (the fake has no history: today's values).
        data.update(
            {
                "last_long_market_value": data["long_market_value"],
                "last_short_market_value": data["short_market_value"],
                "last_cash": data["cash"],
                "last_initial_margin": data["initial_margin"],
                "last_regt_buying_power": data["regt_buying_power"],
                "last_buying_power": data["buying_power"],
                "last_daytrade_count": 0,
            }
        )
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
        """``POST …/tokenization/mint`` as documented: ``underlying_symbol``, ``qty``,
        ``issuer`` and ``network`` (closed enums), ``wallet_address`` required (422
        otherwise); 400 for an insufficient position; ``Idempotency-Key`` (≤ 128
        characters, else 400): the same key and body answer the original request
        with ``Idempotent-Replayed: true``, the same key with another body 422, and
        the key of a request that was refused 400."""
        self.mint_posts += 1
        raw = await request.read()
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 0 < len(key) <= 128:
            return _err(400, 40010000, "invalid Idempotency-Key")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
        if key is not None and key in self.idempotency:
            first_body, request_id = self.idempotency[key]
            if body != first_body:
                return _err(
                    422, 42210000, "Idempotency-Key was already used with a different request body"
                )
            if request_id is None:
                return _err(400, 40010000, "the request with this Idempotency-Key was rejected")
            return web.json_response(
                self.tokenization[request_id], headers={"Idempotent-Replayed": "true"}
            )
        response, request_id = self._mint(body)
        if key is not None:
            self.idempotency[key] = (body, request_id)
        return response

    def _mint(self, body: Any) -> tuple[web.Response, str | None]:
        if not isinstance(body, dict):
            return _err(400, 40010000, "request body format is invalid"), None
        for field in ("underlying_symbol", "qty", "issuer", "network", "wallet_address"):
            if not isinstance(body.get(field), str) or not body[field]:
                return _err(422, 42210000, f"{field} is required"), None
        if body["issuer"] not in self.issuers:
            return _err(422, 42210000, f"invalid issuer: {body['issuer'][:40]}"), None
        if body["network"] not in self.networks:
            return _err(422, 42210000, f"invalid network: {body['network'][:40]}"), None
        try:
            qty = Decimal(body["qty"])
        except InvalidOperation:
            return _err(422, 42210000, "qty is invalid"), None
        if not qty.is_finite() or qty <= 0:
            return _err(422, 42210000, "qty must be > 0"), None
        symbol, wallet = body["underlying_symbol"], body["wallet_address"]
        held = self.positions.get(symbol, Decimal(0))
        if qty > held:
            return _err(400, 40010000, "insufficient position to tokenize"), None
        self.positions[symbol] = held - qty
        data = self._request_json(
            "mint", symbol, qty, wallet_address=wallet, issuer=body["issuer"],
            network=body["network"],
        )
        self._spawn(self._finish_mint(data, wallet))
        return web.json_response(data), str(data["tokenization_request_id"])

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
        app.router.add_get(
            f"{base}/account/configurations", self._scoped(self.handle_get_configurations)
        )
        app.router.add_patch(
            f"{base}/account/configurations", self._scoped(self.handle_patch_configurations)
        )
        app.router.add_post(f"{base}/orders", self._scoped(self.handle_post_order))
        app.router.add_get(f"{base}/orders", self._scoped(self.handle_list_orders))
        app.router.add_get(
            f"{base}/orders:by_client_order_id", self._scoped(self.handle_get_by_client_id)
        )
        app.router.add_get(f"{base}/orders/{{order_id}}", self._scoped(self.handle_get_order))
        app.router.add_delete(
            f"{base}/orders/{{order_id}}", self._scoped(self.handle_cancel_order)
        )
        app.router.add_get(f"{base}/positions", self._scoped(self.handle_positions))
        app.router.add_get(
            f"{base}/positions/{{symbol_or_asset_id}}", self._scoped(self.handle_position)
        )
        self._add_wallet_routes(app, self._scoped)
        app.router.add_get("/v1/assets/{symbol_or_asset_id}", self.handle_asset)
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
    parser.add_argument(
        "--calendar",
        action="store_true",
        help="follow the calendar and its sessions (move the clock: POST /_control/clock)",
    )
    parser.add_argument("--deposit-address", default=None, help="USDC deposit address")
    parser.add_argument("--usdc", default="0", help="USDC held at start")
    args = parser.parse_args(argv)
    extra = {"deposit_address": args.deposit_address} if args.deposit_address else {}
    fake = FakeAlpacaBroker(
        key=args.key,
        secret=args.secret,
        account_id=args.account_id,
        market_open=None if args.calendar else not args.closed,
        **extra,
    )
    fake.usdc = Decimal(args.usdc)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(fake, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

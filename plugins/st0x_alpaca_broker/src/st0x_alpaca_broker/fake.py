"""A fake Alpaca Broker API server, built on :class:`st0x_alpaca.fake.FakeAlpacaBase`.

Serves the account-scoped trading endpoints under
``/v1/trading/accounts/{account_id}/...`` (HTTP Basic auth with the partner
key and secret), ``/v1/calendar`` and ``/v1/clock``. An unknown account id gets
404 ``40410000``. Every response carries ``X-RateLimit-Limit`` /
``X-RateLimit-Remaining`` / ``X-RateLimit-Reset``, which the Broker API uses to
publish its per-partner budget.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from st0x_alpaca.fake import FakeAlpacaBase, serve

ACCOUNT_ID = "5fc0795e-1f16-40cc-aa90-ede67c39d7a9"

Handler = Callable[[web.Request], Awaitable[web.Response]]


class FakeAlpacaBroker(FakeAlpacaBase):
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
        return data

    def _scoped(self, handler: Handler) -> Handler:
        async def scoped(request: web.Request) -> web.Response:
            if request.match_info["account_id"] != self.account_id:
                return web.json_response(
                    {"code": 40410000, "message": "account not found"}, status=404
                )
            return await handler(request)

        return scoped

    def _add_routes(self, app: web.Application) -> None:
        base = "/v1/trading/accounts/{account_id}"
        app.router.add_get(f"{base}/account", self._scoped(self.handle_account))
        app.router.add_post(f"{base}/orders", self._scoped(self.handle_post_order))
        app.router.add_get(
            f"{base}/orders:by_client_order_id", self._scoped(self.handle_get_by_client_id)
        )
        app.router.add_get(f"{base}/orders/{{order_id}}", self._scoped(self.handle_get_order))
        app.router.add_get(f"{base}/positions", self._scoped(self.handle_positions))
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
    args = parser.parse_args(argv)
    fake = FakeAlpacaBroker(
        key=args.key, secret=args.secret, account_id=args.account_id, market_open=not args.closed
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(fake, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

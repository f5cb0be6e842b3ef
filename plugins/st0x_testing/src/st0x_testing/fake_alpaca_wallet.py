"""The fake Broker API's USDC side: ``USDCUSD`` conversions and the crypto wallet.

State a test reads and sets (all plain attributes, Decimal amounts):

* ``usdc``: USDC held. It shows in ``GET …/positions`` as Alpaca shows crypto:
  symbol ``USDCUSD``, ``asset_class`` ``crypto``, exchange ``CRYPTO``; the
  account's ``cash`` stays USD only (as at Alpaca).
* Conversions: ``POST …/orders`` with symbol ``USDCUSD`` (or ``USDC/USD``),
  ``market``, ``gtc``/``ioc``. Answered ``new`` (symbol ``USDC/USD``,
  ``asset_class`` ``crypto``), filled after ``conversion_delay`` seconds at
  ``conversion_price`` (USD per USDC) moved by ``conversion_slippage_bps``
  against us; ``conversion_fee_bps`` of the notional is charged in USD and
  reported as the order's ``commission``. Buy debits cash and credits
  ``usdc``; sell the reverse. ``reject_conversions`` (or a balance that no
  longer covers it at fill time) ends it ``rejected``. A duplicate
  ``client_order_id`` gets 422 "client_order_id must be unique", like Alpaca.
  ``DELETE …/orders/{id}`` cancels an open conversion (204; the fill timer
  then does nothing); one that already ended gets 422 ``order is already in
  "filled" state`` (Alpaca's wording), an unknown id 404. Any other order is
  cancelled as in the Trading API fake. ``fill_on_cancel`` (a fraction, default 0)
  fills that share of the order just before the cancel lands: 1 is a fill
  that beat the cancel (422), between 0 and 1 a partial fill then cancelled.
* Whitelist: ``POST/GET …/wallets/whitelists``; new entries are ``APPROVED``
  when ``auto_approve_whitelist`` else ``PENDING`` (``set_whitelist_status``
  changes one later). ``chain`` is answered ``ETH``.
* Withdrawals: ``POST …/wallets/transfers {amount, asset, address}`` needs
  an ``APPROVED`` entry (else 403 ``40310000``) and the balance (else 403).
  ``usdc`` is debited at once; the OUTGOING transfer goes ``PENDING`` ->
  ``PROCESSING`` -> ``COMPLETE`` (``withdrawal_delay`` between steps), the
  last step calling ``send_usdc(address, amount - withdrawal_network_fee)``
  for the real onchain transfer and recording its tx hash. ``fail_withdrawals``
  (or no ``send_usdc``, or one that raises) ends it ``FAILED`` and refunds.
* Deposits: ``watch_deposits()`` (-> ``[(tx_hash, from_address, amount)]``)
  is polled every ``watch_interval`` while the fake runs; each new tx hash
  opens an INCOMING ``PENDING`` transfer that turns ``COMPLETE`` after
  ``deposit_delay`` and credits ``usdc``.
* ``GET …/wallets?asset=USDC&network=ethereum`` answers ``deposit_address``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
from aiohttp import web

from st0x_testing.fake_alpaca import FakeAlpacaBase, FakeOrder, rfc3339

SendUsdc = Callable[[str, Decimal], Awaitable[str]]
"""(to address, amount) -> tx hash of the onchain USDC transfer from the hot wallet."""
WatchDeposits = Callable[[], Awaitable[list[tuple[str, str, Decimal]]]]
"""-> (tx hash, from address, amount) of every USDC transfer to the deposit address."""

CONVERSION_SYMBOLS = frozenset({"USDCUSD", "USDC/USD"})
DEFAULT_DEPOSIT_ADDRESS = "0x42a76c0e4b4b8a1bb7e5b0f5a0d5c0e4b4b8a1bb"
DEFAULT_HOT_WALLET = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
USDC_ASSET_ID = str(uuid.uuid5(uuid.NAMESPACE_OID, "USDC"))
BPS = Decimal(10000)


def _s(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _err(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


def _evm(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        return False
    try:
        int(value[2:], 16)
    except ValueError:
        return False
    return True


def _amount(value: Any, places: int) -> Decimal | None:
    """A positive decimal string with at most ``places`` decimals, else None."""
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    exponent = number.as_tuple().exponent
    if not number.is_finite() or number <= 0 or not isinstance(exponent, int):
        return None
    return number if exponent >= -places else None


@attrs.define
class FakeConversion(FakeOrder):
    """A ``USDCUSD`` order: filled by a timer, not by reads; fee in ``commission``."""

    fee: Decimal = Decimal(0)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data.update(
            {
                "symbol": "USDC/USD",
                "asset_class": "crypto",
                "position_intent": None,
                "commission": _s(self.fee),
                "filled_avg_price": _s(self.price) if self.filled_qty > 0 else None,
            }
        )
        return data


class FakeUsdcWallet(FakeAlpacaBase):
    """Conversions, whitelist, transfers and deposit address of one account."""

    def __init__(
        self,
        *,
        deposit_address: str = DEFAULT_DEPOSIT_ADDRESS,
        hot_wallet: str = DEFAULT_HOT_WALLET,
        send_usdc: SendUsdc | None = None,
        watch_deposits: WatchDeposits | None = None,
        **kwargs: Any,
    ) -> None:
        self.usdc = Decimal(0)
        self.deposit_address = deposit_address
        self.hot_wallet = hot_wallet
        self.send_usdc = send_usdc
        self.watch_deposits = watch_deposits
        self.conversion_price = Decimal(1)
        self.conversion_slippage_bps = Decimal(0)
        self.conversion_fee_bps = Decimal(0)
        self.conversion_delay = 0.1
        self.reject_conversions = False
        self.fill_on_cancel = Decimal(0)
        self.cancel_requests = 0
        self.auto_approve_whitelist = True
        self.whitelist: list[dict[str, Any]] = []
        self.transfers: list[dict[str, Any]] = []
        """Newest last; answered newest first."""
        self.withdrawal_delay = 0.1
        self.withdrawal_network_fee = Decimal(0)
        self.fail_withdrawals = False
        self.withdrawal_posts = 0
        self.deposit_delay = 0.1
        self.watch_interval = 0.1
        self._tasks: set[asyncio.Task[None]] = set()
        super().__init__(**kwargs)

    # -- lifecycle -------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, port: int = 0) -> FakeUsdcWallet:
        await super().start(port)
        if self.watch_deposits is not None:
            self._spawn(self._watch_deposits())
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()

    def _stamp(self) -> str:
        return rfc3339(self.now())

    # -- test helpers ---------------------------------------------------------------

    def set_whitelist_status(self, address: str, status: str) -> None:
        for entry in self.whitelist:
            if entry["address"].lower() == address.lower():
                entry["status"] = status
                return
        raise KeyError(f"{address} is not in the whitelist")

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        return next(t for t in self.transfers if t["id"] == transfer_id)

    # -- positions, account ----------------------------------------------------------

    def positions_json(self) -> list[dict[str, Any]]:
        rows = super().positions_json()
        if self.usdc != 0:
            value = _s(self.usdc * self.conversion_price)
            rows.append(
                {
                    "asset_id": USDC_ASSET_ID,
                    "symbol": "USDCUSD",
                    "exchange": "CRYPTO",
                    "asset_class": "crypto",
                    "asset_marginable": False,
                    "avg_entry_price": _s(self.conversion_price),
                    "qty": _s(self.usdc),
                    "qty_available": _s(self.usdc),
                    "side": "long",
                    "market_value": value,
                    "cost_basis": value,
                    "unrealized_pl": "0",
                    "unrealized_plpc": "0",
                    "unrealized_intraday_pl": "0",
                    "unrealized_intraday_plpc": "0",
                    "current_price": _s(self.conversion_price),
                    "lastday_price": _s(self.conversion_price),
                    "change_today": "0",
                }
            )
        return rows

    # -- conversions -----------------------------------------------------------------

    async def handle_post_order(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict) and body.get("symbol") in CONVERSION_SYMBOLS:
            return self._post_conversion(body)
        return await super().handle_post_order(request)

    def _post_conversion(self, body: dict[str, Any]) -> web.Response:
        self.order_posts += 1
        self.order_bodies.append(body)
        side = body.get("side")
        if side not in ("buy", "sell"):
            return _err(422, 40010001, "invalid side")
        if body.get("type", body.get("order_type")) != "market":
            return _err(422, 40010001, "invalid order type for this fake (market only)")
        if body.get("time_in_force") not in ("gtc", "ioc"):
            return _err(422, 40010001, "invalid crypto time_in_force (gtc or ioc)")
        qty = _amount(body.get("qty"), 9)
        if qty is None:
            return _err(422, 40010001, "qty must be a positive decimal string")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(cid, str) or len(cid) > 48:
            return _err(422, 40010001, "invalid client_order_id")
        if cid in self.by_client_order_id:
            return _err(422, 40010001, "client_order_id must be unique")
        slip = self.conversion_slippage_bps / BPS
        price = self.conversion_price * (1 + slip if side == "buy" else 1 - slip)
        fee = qty * price * self.conversion_fee_bps / BPS
        if side == "buy" and qty * price + fee > self.cash:
            return _err(403, 40310000, "insufficient balance for USD")
        if side == "sell" and qty > self.usdc:
            return _err(
                403,
                40310000,
                f"insufficient balance for USDC (requested: {_s(qty)}, available: {_s(self.usdc)})",
            )
        order = FakeConversion(
            id=str(uuid.uuid4()),
            client_order_id=cid,
            symbol="USDCUSD",
            side=side,
            qty=qty,
            time_in_force=str(body["time_in_force"]),
            script=(),
            price=price,
            created_at=self.now(),
            fee=fee,
        )
        self.orders[order.id] = order
        self.by_client_order_id[cid] = order.id
        self._spawn(self._fill_conversion(order))
        return web.json_response(order.to_json())

    async def _fill_conversion(self, order: FakeConversion) -> None:
        await asyncio.sleep(self.conversion_delay)
        if order.status != "new":  # cancelled meanwhile
            return
        self._execute(order, order.qty)

    def _execute(self, order: FakeConversion, qty: Decimal) -> None:
        """Fill ``qty`` of a live conversion (all of it: ``filled``), or reject it."""
        now = self.now()
        order.updated_at = now
        cost = qty * order.price
        fee = order.fee * qty / order.qty
        short = (order.side == "buy" and cost + fee > self.cash) or (
            order.side == "sell" and qty > self.usdc
        )
        if self.reject_conversions or short:
            order.status = "rejected"
            order.failed_at = now
            order.fee = Decimal(0)
            return
        if order.side == "buy":
            self.cash -= cost + fee
            self.usdc += qty
        else:
            self.usdc -= qty
            self.cash += cost - fee
        order.filled_qty = qty
        order.fee = fee
        if qty == order.qty:
            order.status = "filled"
            order.filled_at = now
        else:
            order.status = "partially_filled"

    def cancel_order(self, order: FakeOrder) -> web.Response:
        """A conversion may fill just before the cancel lands (``fill_on_cancel``)."""
        if isinstance(order, FakeConversion):
            if order.status == "new" and self.fill_on_cancel > 0:
                self._execute(order, order.qty * min(self.fill_on_cancel, Decimal(1)))
            if order.status not in ("new", "partially_filled"):
                return _err(422, 42210000, f'order is already in "{order.status}" state')
        return super().cancel_order(order)

    def advance(self, order: FakeOrder) -> None:
        if isinstance(order, FakeConversion):
            order.reads += 1
            return
        super().advance(order)

    # -- whitelist -------------------------------------------------------------------

    async def handle_whitelist(self, _request: web.Request) -> web.Response:
        return web.json_response(self.whitelist)

    async def handle_add_whitelist(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return _err(400, 40010000, "request body format is invalid")
        if not isinstance(body, dict) or not _evm(body.get("address")):
            return _err(422, 40010001, "address is invalid")
        asset = body.get("asset")
        if not isinstance(asset, str) or not asset:
            return _err(422, 40010001, "asset is required")
        address = str(body["address"])
        for entry in self.whitelist:
            if entry["address"].lower() == address.lower() and entry["asset"] == asset:
                return _err(422, 40010001, "address is already whitelisted for this asset")
        entry = {
            "id": str(uuid.uuid4()),
            "address": address,
            "asset": asset,
            "chain": "ETH",
            "status": "APPROVED" if self.auto_approve_whitelist else "PENDING",
            "created_at": self._stamp(),
        }
        self.whitelist.append(entry)
        return web.json_response(entry)

    def _approved(self, address: str, asset: str) -> bool:
        return any(
            e["address"].lower() == address.lower()
            and e["asset"] == asset
            and e["status"] == "APPROVED"
            for e in self.whitelist
        )

    # -- transfers -------------------------------------------------------------------

    async def handle_transfers(self, _request: web.Request) -> web.Response:
        return web.json_response(list(reversed(self.transfers)))

    def _transfer_json(
        self, direction: str, amount: Decimal, source: str, to: str, **extra: Any
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "tx_hash": None,
            "direction": direction,
            "status": "PENDING",
            "amount": _s(amount),
            "usd_value": _s(amount * self.conversion_price),
            "network_fee": "0",
            "fees": "0",
            "chain": "ETH",
            "asset": "USDC",
            "from_address": source,
            "to_address": to,
            "created_at": self._stamp(),
        }
        data.update(extra)
        self.transfers.append(data)
        return data

    async def handle_withdraw(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return _err(400, 40010000, "request body format is invalid")
        if not isinstance(body, dict):
            return _err(400, 40010000, "request body format is invalid")
        self.withdrawal_posts += 1
        if body.get("asset") != "USDC":
            return _err(422, 40010001, "asset is not supported for withdrawal")
        address = body.get("address")
        if not _evm(address):
            return _err(422, 40010001, "address is invalid")
        amount = _amount(body.get("amount"), 6)
        if amount is None:
            return _err(422, 40010001, "amount must be a positive decimal with at most 6 places")
        if not self._approved(str(address), "USDC"):
            return _err(403, 40310000, "address is not whitelisted")
        if amount > self.usdc:
            return _err(403, 40310000, "insufficient balance for USDC")
        if amount <= self.withdrawal_network_fee:
            return _err(422, 40010001, "amount does not cover the network fee")
        self.usdc -= amount
        data = self._transfer_json(
            "OUTGOING",
            amount,
            self.hot_wallet,
            str(address),
            network_fee=_s(self.withdrawal_network_fee),
        )
        self._spawn(self._finish_withdrawal(data))
        return web.json_response(data)

    async def _finish_withdrawal(self, data: dict[str, Any]) -> None:
        amount = Decimal(data["amount"])
        await asyncio.sleep(self.withdrawal_delay)
        data["status"] = "PROCESSING"
        await asyncio.sleep(self.withdrawal_delay)
        tx_hash: str | None = None
        if not self.fail_withdrawals and self.send_usdc is not None:
            with contextlib.suppress(Exception):
                tx_hash = await self.send_usdc(
                    data["to_address"], amount - Decimal(data["network_fee"])
                )
        if tx_hash is None:
            data["status"] = "FAILED"
            self.usdc += amount
            return
        data["tx_hash"] = tx_hash
        data["status"] = "COMPLETE"

    # -- deposits --------------------------------------------------------------------

    async def _watch_deposits(self) -> None:
        assert self.watch_deposits is not None
        seen = {str(t["tx_hash"]).lower() for t in self.transfers if t.get("tx_hash")}
        while True:
            with contextlib.suppress(Exception):
                for tx_hash, source, amount in await self.watch_deposits():
                    if tx_hash.lower() in seen:
                        continue
                    seen.add(tx_hash.lower())
                    data = self._transfer_json(
                        "INCOMING", amount, source, self.deposit_address, tx_hash=tx_hash
                    )
                    self._spawn(self._finish_deposit(data))
            await asyncio.sleep(self.watch_interval)

    async def _finish_deposit(self, data: dict[str, Any]) -> None:
        await asyncio.sleep(self.deposit_delay)
        self.usdc += Decimal(data["amount"])
        data["status"] = "COMPLETE"

    async def handle_wallet(self, request: web.Request) -> web.Response:
        asset = request.query.get("asset", "")
        network = request.query.get("network", "ethereum")
        if asset != "USDC":
            return _err(422, 40010001, f"asset {asset[:20]!r} is not supported")
        if network.lower() != "ethereum":
            return _err(422, 40010001, f"network {network[:20]!r} is not supported")
        return web.json_response(
            {
                "asset_id": USDC_ASSET_ID,
                "address": self.deposit_address,
                "created_at": "2025-01-06T15:11:21.518316Z",
            }
        )

    def _add_wallet_routes(self, app: web.Application, scoped: Callable[[Any], Any]) -> None:
        wallets = "/v1/accounts/{account_id}/wallets"
        app.router.add_get(wallets, scoped(self.handle_wallet))
        app.router.add_get(f"{wallets}/whitelists", scoped(self.handle_whitelist))
        app.router.add_post(f"{wallets}/whitelists", scoped(self.handle_add_whitelist))
        app.router.add_get(f"{wallets}/transfers", scoped(self.handle_transfers))
        app.router.add_post(f"{wallets}/transfers", scoped(self.handle_withdraw))


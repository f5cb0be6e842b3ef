"""The Broker API as a :class:`~st0x_liquidity.UsdcCustodian` (mixed into the custodian).

* Conversion: a ``USDCUSD`` market ``gtc`` order (buy = USD -> USDC, ``qty`` in
  USDC) carrying the caller's ``client_order_id`` (shortened like hedge ids
  when longer than Alpaca's 48 characters). Sent again, Alpaca answers 422
  "client_order_id must be unique" and the existing order is returned; a lost
  or unreadable answer is resolved by looking the id up, and stays
  :class:`~st0x_liquidity.AmbiguousBrokerError` if it cannot be found.
* Cancel: ``DELETE …/orders/{order_id}`` (204 accepted; 422 no longer
  cancelable, i.e. it ended meanwhile; 404 unknown), then the order is read
  again: the caller sees a fill that beat the cancel.
* Withdrawal: ``POST …/wallets/transfers``, checked against the whitelist
  first. Alpaca takes no idempotency key here, so a 5xx, a timeout or an
  unreadable 2xx is ambiguous: the caller looks in :meth:`transfers` (by id or
  tx hash) before asking again. Any other 4xx is final.
* Transfers are always listed whole and filtered by the caller (Alpaca's id
  filter was found unreliable).
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import attrs
from st0x_alpaca.common import alpaca_client_order_id
from st0x_alpaca.http import AlpacaNotFound, AlpacaRejection
from st0x_alpaca.wire import AlpacaOrder, MalformedReplyError

from st0x_liquidity import (
    AmbiguousBrokerError,
    AuthenticationRequiredError,
    CashConversion,
    FinalBrokerError,
    RetryableBrokerError,
    WalletTransfer,
)

from .client import AlpacaBrokerClient
from .wallet_wire import (
    USDC,
    conversion_body,
    conversion_from_order,
    parse_deposit_address,
    parse_transfer,
    parse_transfers,
    parse_whitelist,
    parse_whitelist_entry,
    usdc_position,
    usdc_text,
    whitelist_status,
)

log = logging.getLogger(__name__)

ENDED = frozenset({"filled", "failed", "cancelled"})
"""Conversion states (the core's) after which there is nothing to cancel."""


def check_address(address: str) -> str:
    """An EVM address (any case); anything else is refused before it is sent."""
    text = address.strip() if isinstance(address, str) else ""
    if len(text) != 42 or not text.startswith("0x"):
        raise FinalBrokerError(f"not an EVM address: {address!r}")
    try:
        int(text[2:], 16)
    except ValueError:
        raise FinalBrokerError(f"not an EVM address: {address!r}") from None
    return text


@attrs.frozen
class UsdcBalances:
    """What the broker account holds: USD cash and USDC (the ``USDCUSD`` crypto position)."""

    usd: Decimal
    usdc: Decimal


class UsdcCustody:
    """Conversion, whitelist, withdrawals, transfers and deposit address over one client."""

    client: AlpacaBrokerClient
    usdc_network: str = "ethereum"
    resolve_attempts: int = 3
    resolve_backoff: float = 0.2

    # -- conversion ------------------------------------------------------------------

    async def convert(self, side: str, quantity: Decimal, client_order_id: str) -> CashConversion:
        sent = alpaca_client_order_id(client_order_id) if client_order_id else ""
        body = conversion_body(side, quantity, sent)
        log.info("alpaca-broker: converting %s %s USDC (%s)", side, body["qty"], sent)
        try:
            order = await self.client.trading.submit_order(body)
        except (AmbiguousBrokerError, MalformedReplyError) as exc:
            log.warning("alpaca-broker: outcome of conversion %s unknown (%s)", sent, exc)
            return await self._resolve(client_order_id, str(exc))
        except AlpacaRejection as exc:
            if exc.duplicate_client_order_id:
                found = await self.conversion(client_order_id)
                if found is not None:
                    log.info("alpaca-broker: conversion %s already placed", sent)
                    if (found.side, found.quantity) != (side, quantity):
                        log.warning(
                            "alpaca-broker: %s exists as %s %s, asked %s %s",
                            sent,
                            found.side,
                            found.quantity,
                            side,
                            quantity,
                        )
                    return found
            raise
        return _readable(order, client_order_id)

    async def conversion(self, client_order_id: str) -> CashConversion | None:
        found = await self.client.trading.get_order_by_client_id(
            alpaca_client_order_id(client_order_id)
        )
        return None if found is None else _readable(found, client_order_id)

    async def cancel_conversion(self, client_order_id: str) -> CashConversion | None:
        """Cancel the conversion if it is still open; the order as it stands afterwards.

        A 422 (no longer cancelable: filled or ended meanwhile) or a 404 from the
        DELETE is not an error: the order is read again and returned as it is.
        """
        found = await self.conversion(client_order_id)
        if found is None or found.status in ENDED:
            return found
        log.warning(
            "alpaca-broker: cancelling conversion %s (order %s, %s)",
            client_order_id,
            found.order_id,
            found.status,
        )
        try:
            await self.client.cancel_order(found.order_id)
        except AlpacaRejection as exc:
            if not isinstance(exc, AlpacaNotFound) and exc.status != 422:
                raise
            log.info("alpaca-broker: conversion %s not cancelable: %s", client_order_id, exc)
        return await self.conversion(client_order_id)

    async def _resolve(self, client_order_id: str, problem: str) -> CashConversion:
        """Find the order a lost answer may have created; never re-POST."""
        for attempt in range(1, self.resolve_attempts + 1):
            try:
                found = await self.conversion(client_order_id)
            except AuthenticationRequiredError:
                raise
            except (RetryableBrokerError, AmbiguousBrokerError) as exc:
                log.warning("alpaca-broker: looking up %s failed: %s", client_order_id, exc)
                found = None
            if found is not None:
                return found
            if attempt < self.resolve_attempts:
                await asyncio.sleep(self.resolve_backoff * 2 ** (attempt - 1))
        raise AmbiguousBrokerError(
            f"{problem}; no conversion with client_order_id {client_order_id} found at Alpaca yet"
        )

    # -- whitelist -------------------------------------------------------------------

    async def whitelist_status(self, address: str) -> str | None:
        entries = parse_whitelist(await self.client.wallet_whitelists())
        return whitelist_status(entries, check_address(address), USDC)

    async def add_to_whitelist(self, address: str) -> str:
        """Whitelist ``address`` for USDC unless it is there already; return its status."""
        address = check_address(address)
        status = await self.whitelist_status(address)
        if status is not None:
            return status
        return parse_whitelist_entry(await self.client.add_wallet_whitelist(address, USDC)).status

    # -- withdrawals, transfers, deposits ------------------------------------------

    async def withdraw_usdc(self, amount: Decimal, address: str) -> WalletTransfer:
        text = usdc_text(amount, "withdrawal amount")
        address = check_address(address)
        status = await self.whitelist_status(address)
        if status != "APPROVED":
            raise FinalBrokerError(
                f"{address} is not whitelisted for USDC withdrawals at Alpaca "
                f"(status {status or 'absent'}); add it and wait for approval"
            )
        try:
            data = await self.client.wallet_withdraw(text, USDC, address)
            return parse_transfer(data)
        except MalformedReplyError as exc:
            raise AmbiguousBrokerError(
                f"withdrawal of {text} USDC to {address}: unreadable answer ({exc}); "
                "it may exist: look in transfers before asking again"
            ) from None
        except AmbiguousBrokerError as exc:
            raise AmbiguousBrokerError(
                f"{exc}; withdrawals carry no idempotency key: look in transfers "
                "before asking again"
            ) from None

    async def transfers(self) -> list[WalletTransfer]:
        return parse_transfers(await self.client.wallet_transfers())

    async def deposit_address(self) -> str:
        return parse_deposit_address(await self.client.wallet_address(USDC, self.usdc_network))

    async def balances(self) -> UsdcBalances:
        """USD cash and USDC held at the broker, separately."""
        positions = await self.client.positions_json()
        account = await self.client.trading.get_account()
        return UsdcBalances(usd=account.cash, usdc=usdc_position(positions))


def _readable(order: AlpacaOrder, client_order_id: str) -> CashConversion:
    """The order exists at Alpaca; if its state cannot be read, that is ambiguous."""
    try:
        return conversion_from_order(order, client_order_id)
    except MalformedReplyError as exc:
        raise AmbiguousBrokerError(
            f"conversion {client_order_id} exists at Alpaca but its state is unreadable: {exc}"
        ) from None

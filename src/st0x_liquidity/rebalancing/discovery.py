"""Vault discovery from the owner's fills.

For every fill transaction the core log recorded, the receipt's
``TakeOrderV3``/``ClearV3`` logs are decoded and, for each order of ours, the
input and output IO used by the fill give a ``(token, vault id)``. The token's
``symbol()`` names the asset (``USDC``, or a tokenized equity's base ticker);
other tokens are ignored. Every vault is kept (one owner can settle one asset
into several vaults; the reference kept only the last one seen and
under-counted): snapshots sum them all, and operations use the pinned vault or,
when none is pinned, the only discovered one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from eth_abi.abi import decode

from ..domain.symbols import base_ticker, is_tokenized_equity
from ..raindex.decode import IO, Clear, LogDecodeError, Order, RawLog, TakeOrder, decode_event
from .chain import ChainClient, RpcError, selector
from .events import VaultDiscovered

log = logging.getLogger(__name__)


def _used(order: Order, owner: str, input_index: int, output_index: int) -> list[IO]:
    if order.owner != owner:
        return []
    found = []
    for ios, index in ((order.valid_inputs, input_index), (order.valid_outputs, output_index)):
        if 0 <= index < len(ios):
            found.append(ios[index])
    return found


async def _asset(chain: ChainClient, token: str, cache: dict[str, str | None]) -> str | None:
    if token not in cache:
        try:
            raw = await chain.call(token, "0x" + selector("symbol()").hex())
            symbol = str(decode(["string"], raw)[0])
        except (RpcError, ValueError, TypeError, OverflowError) as exc:
            log.warning("vault discovery: symbol() of %s failed: %s", token, exc)
            symbol = ""
        if symbol.upper() == "USDC":
            cache[token] = "USDC"
        elif symbol and is_tokenized_equity(symbol):
            cache[token] = base_ticker(symbol).upper()
        else:
            cache[token] = None
    return cache[token]


async def discover_vaults(
    chain: ChainClient,
    orderbook: str,
    owner: str,
    tx_hashes: Iterable[str],
    *,
    known: set[tuple[str, str]],
    cache: dict[str, str | None] | None = None,
) -> list[VaultDiscovered]:
    """New ``(token, vault id)`` pairs of ``owner``'s orders in these transactions."""
    owner = owner.lower()
    cache = {} if cache is None else cache
    found: list[VaultDiscovered] = []
    for tx_hash in tx_hashes:
        receipt = await chain.receipt(tx_hash)
        if receipt is None:
            continue
        for entry in receipt.get("logs", []):
            try:
                event = decode_event(RawLog.from_rpc(entry), orderbook)
            except LogDecodeError:
                continue
            ios: list[IO] = []
            if isinstance(event, TakeOrder):
                ios = _used(event.order, owner, event.input_index, event.output_index)
            elif isinstance(event, Clear):
                ios = _used(event.alice, owner, event.alice_input_index, event.alice_output_index)
                ios += _used(event.bob, owner, event.bob_input_index, event.bob_output_index)
            for io in ios:
                vault_id = "0x" + io.vault_id.hex()
                key = (io.token.lower(), vault_id)
                if key in known:
                    continue
                asset = await _asset(chain, io.token.lower(), cache)
                if asset is None:
                    continue
                known.add(key)
                found.append(VaultDiscovered(asset, io.token.lower(), vault_id, tx_hash))
    return found

"""What the walk knows of each token a fill names: its symbol and decimals.

A fill's amounts are exact only with the token's decimals, and its equity is named
by the token's symbol, so both are read from the token (``symbol()``,
``decimals()``) the first time the walk meets it, and kept in the store (namespace
``raindex.tokens``) so a restart does not ask the node again. A token that cannot
be read gives a reason instead, and the fills naming it are skipped with it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from eth_abi.abi import decode as abi_decode

from ..protocols import PositionStore
from . import abi
from .decode import LogDecodeError, TokenInfo
from .node import NodeUnavailable, RpcError

TOKENS_NS = "raindex.tokens"

Request = Callable[[str, list[Any]], Awaitable[Any]]
"""A JSON-RPC method and its params to the node's answer (the source's walk requests)."""


async def load_tokens(
    known: dict[str, TokenInfo],
    tokens: set[str],
    store: PositionStore | None,
    request: Request,
) -> dict[str, str]:
    """Make ``known`` know every token in ``tokens``; reasons for those it cannot."""
    errors: dict[str, str] = {}
    for token in sorted(tokens - set(known)):
        if store is not None:
            blob = await store.get_blob(TOKENS_NS, token)
            if blob:
                try:
                    data = json.loads(blob)
                    known[token] = TokenInfo(str(data["symbol"]), int(data["decimals"]))
                    continue
                except (ValueError, KeyError, TypeError):
                    pass
        try:
            symbol = decode_symbol(await _eth_call(request, token, "symbol"))
            decimals = int(abi_decode(["uint8"], await _eth_call(request, token, "decimals"))[0])
        except RpcError as exc:
            errors[token] = f"token {token}: symbol()/decimals() failed: {exc.text}"
            continue
        except (ValueError, LogDecodeError) as exc:
            errors[token] = f"token {token}: symbol()/decimals() unreadable: {exc}"[:300]
            continue
        except Exception as exc:  # eth-abi decoding errors of many types
            if isinstance(exc, NodeUnavailable | asyncio.CancelledError):
                raise
            errors[token] = f"token {token}: symbol()/decimals() unreadable: {type(exc).__name__}"
            continue
        known[token] = TokenInfo(symbol, decimals)
        if store is not None:
            await store.put_blob(
                TOKENS_NS, token, json.dumps({"symbol": symbol, "decimals": decimals}).encode()
            )
    return errors


async def _eth_call(request: Request, to: str, function: str) -> bytes:
    data = "0x" + abi.function_selector("IERC20Metadata", function).hex()
    result = await request("eth_call", [{"to": to, "data": data}, "latest"])
    if not isinstance(result, str) or not result.startswith("0x"):
        raise ValueError(f"{function}() returned {result!r:.60}")
    return bytes.fromhex(result[2:])


def decode_symbol(data: bytes) -> str:
    """``symbol()``'s answer: an ABI string, or the ``bytes32`` some old tokens return."""
    if len(data) == 32:  # some old tokens return bytes32
        return data.rstrip(b"\x00").decode("utf-8", "replace")
    (symbol,) = abi_decode(["string"], data)
    if not isinstance(symbol, str):
        raise ValueError("symbol() is not a string")
    return symbol

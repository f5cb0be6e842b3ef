"""Signing and sending transactions for rebalancing: one sender per chain.

The key comes from an encrypted keystore (password in the environment) or from
an environment variable; it never passes through config files, logs or error
messages. Transactions are EIP-1559, signed locally, and **prepared before they
are sent**: the raw signed bytes, hash and nonce go into the operation's intent
event first, so after a crash the same transaction (same hash) is looked up or
re-broadcast, never a second one.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from eth_abi.abi import decode, encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ..errors import ConfigError
from ..raindex.abi import (
    ORDERBOOK_INTERFACES,
    VAULT_FUNCTIONS,
    function_input_types,
    function_selector,
    orderbook_errors,
)
from ..raindex.floats import decimal_to_float, float_to_decimal

ERROR_STRING = bytes.fromhex("08c379a0")
PANIC = bytes.fromhex("4e487b71")
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
DEPOSIT_V2_TOPIC = "0x" + keccak(text="DepositV2(address,address,bytes32,uint256)").hex()
WITHDRAW_V2_TOPIC = (
    "0x" + keccak(text="WithdrawV2(address,address,bytes32,bytes32,bytes32,uint256)").hex()
)


class RpcError(Exception):
    """A JSON-RPC error answer; ``error`` keeps its ``data`` (revert bytes)."""

    def __init__(self, method: str, error: Any) -> None:
        self.method = method
        self.error = error
        text = error.get("message", error) if isinstance(error, dict) else error
        super().__init__(f"{method}: {text}"[:300])


class JsonRpc:
    """Minimal HTTP JSON-RPC client (keeps error data, which revert decoding needs)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        self._id = 0

    async def request(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        async with self._session.post(self.url, json=body) as response:
            data = await response.json(content_type=None)
        if not isinstance(data, dict):
            raise RpcError(method, f"malformed answer {data!r:.80}")
        if data.get("error") is not None:
            raise RpcError(method, data["error"])
        return data.get("result")

    async def close(self) -> None:
        await self._session.close()


class TransactionReverted(Exception):
    def __init__(self, tx_hash: str | None, reason: str) -> None:
        super().__init__(f"transaction {tx_hash or '(not sent)'} reverted: {reason}")
        self.tx_hash = tx_hash
        self.reason = reason


class TransactionReplaced(Exception):
    """Our nonce was used by another transaction: ours can never be mined."""


def load_account(keystore: str, password_env: str, key_env: str) -> LocalAccount:
    """The market-maker key: keystore + password from the environment, or a key in the env."""
    if keystore:
        password = os.environ.get(password_env)
        if password is None:
            raise ConfigError("rebalancing.keystore", f"set the password in ${password_env}")
        try:
            data = json.loads(Path(keystore).read_text("utf-8"))
            key = Account.decrypt(data, password)
        except (OSError, ValueError) as exc:
            # the message names the file, never the password or key
            raise ConfigError(
                "rebalancing.keystore", f"cannot decrypt {keystore}: {type(exc).__name__}"
            ) from None
        account: LocalAccount = Account.from_key(key)
        return account
    value = os.environ.get(key_env)
    if not value:
        raise ConfigError("rebalancing", f"no signing key: set ${key_env} or keystore")
    try:
        loaded: LocalAccount = Account.from_key(value)
    except (ValueError, TypeError):
        raise ConfigError("rebalancing", f"${key_env} is not a valid private key") from None
    return loaded


def decode_revert(data: str | bytes | None) -> str:
    """``Error(string)``, ``Panic(uint)`` or a custom error of the real orderbook (IOrderBookV5,
    IRaindexV6 and their implementation, from the packaged ABI data) such as ``SameOwner()``
    or ``ZeroVaultId(…)``; anything else is shown raw."""
    if data is None:
        return "no revert data"
    raw = (
        bytes.fromhex(data[2:] if data.startswith("0x") else data)
        if isinstance(data, str)
        else data
    )
    if len(raw) < 4:
        return "reverted without a reason"
    selector, body = raw[:4], raw[4:]
    try:
        if selector == ERROR_STRING:
            return str(decode(["string"], body)[0])
        if selector == PANIC:
            return f"Panic({decode(['uint256'], body)[0]})"
        known = orderbook_errors().get(selector)
        if known:
            name, types = known
            args = decode(list(types), body) if types else ()
            shown = ", ".join(a.hex() if isinstance(a, bytes) else str(a) for a in args)
            return f"{name}({shown})"
    except Exception:  # malformed revert data: show it raw
        pass
    return f"unknown error 0x{raw.hex()}"


def _revert_data(error: Any) -> str | None:
    if isinstance(error, dict):
        data = error.get("data")
        if isinstance(data, str):
            return data
        if isinstance(data, dict) and isinstance(data.get("data"), str):
            return str(data["data"])
    return None


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def erc20_transfer(to: str, units: int) -> str:
    return (
        "0x"
        + (
            selector("transfer(address,uint256)") + encode(["address", "uint256"], [to, units])
        ).hex()
    )


def erc20_approve(spender: str, units: int) -> str:
    return (
        "0x"
        + (
            selector("approve(address,uint256)") + encode(["address", "uint256"], [spender, units])
        ).hex()
    )


def _vault_call(interface: str, index: int, token: str, vault_id: bytes, amount: Decimal) -> str:
    """Calldata of the orderbook's deposit (index 0) or withdraw (1), built from the ABI data
    of the configured interface: ``deposit3``/``withdraw3`` (V5), ``deposit4``/``withdraw4`` (V6)."""
    name = VAULT_FUNCTIONS[interface][index]
    source = ORDERBOOK_INTERFACES[interface]
    types = list(function_input_types(source, name))
    body = encode(types, [token, vault_id, decimal_to_float(amount), []])
    return "0x" + (function_selector(source, name) + body).hex()


def vault_deposit(token: str, vault_id: bytes, amount: Decimal, interface: str = "v5") -> str:
    return _vault_call(interface, 0, token, vault_id, amount)


def vault_withdraw(token: str, vault_id: bytes, amount: Decimal, interface: str = "v5") -> str:
    return _vault_call(interface, 1, token, vault_id, amount)


def is_vaultless(interface: str, vault_id: bytes) -> bool:
    """IRaindexV6's vault id 0 means no vault: the owner's wallet (on V5 it is a vault)."""
    return interface == "v6" and not any(vault_id)


def vault_id_bytes(text: str) -> bytes:
    return int(text, 16).to_bytes(32, "big")


@attrs.frozen
class PreparedTx:
    """A signed transaction not necessarily sent yet; all of it goes in the intent event."""

    tx_hash: str
    nonce: int
    raw: str

    def to_details(self) -> dict[str, str]:
        return {"tx_hash": self.tx_hash, "nonce": str(self.nonce), "raw": self.raw}

    @classmethod
    def from_details(cls, details: dict[str, str]) -> PreparedTx:
        return cls(details["tx_hash"], int(details["nonce"]), details["raw"])


class ChainClient:
    """Reads, and sends from one local account, over one node connection."""

    def __init__(
        self, node: JsonRpc, account: LocalAccount | None, chain_id: int, confirmations: int = 1
    ) -> None:
        self.node = node
        self.account = account
        self.chain_id = chain_id
        self.confirmations = max(1, confirmations)
        self._lock = asyncio.Lock()
        self._next_nonce: int | None = None

    @classmethod
    async def connect(
        cls, url: str, account: LocalAccount | None, chain_id: int, confirmations: int = 1
    ) -> ChainClient:
        return cls(JsonRpc(url), account, chain_id, confirmations)

    async def close(self) -> None:
        await self.node.close()

    @property
    def address(self) -> str:
        if self.account is None:
            raise ConfigError("rebalancing", "no signing key configured")
        return str(self.account.address)

    async def rpc(self, method: str, params: list[Any]) -> Any:
        return await self.node.request(method, params)

    # -- reads --------------------------------------------------------------------

    async def call(self, to: str, data: str, block: str = "latest") -> bytes:
        result = await self.rpc("eth_call", [{"to": to, "data": data}, block])
        return bytes.fromhex(str(result)[2:])

    async def erc20_balance(self, token: str, owner: str) -> int:
        data = "0x" + (selector("balanceOf(address)") + encode(["address"], [owner])).hex()
        return int(decode(["uint256"], await self.call(token, data))[0])

    async def erc20_allowance(self, token: str, owner: str, spender: str) -> int:
        data = selector("allowance(address,address)") + encode(
            ["address", "address"], [owner, spender]
        )
        return int(decode(["uint256"], await self.call(token, "0x" + data.hex()))[0])

    async def vault_balance(
        self, orderbook: str, owner: str, token: str, vault_id: bytes
    ) -> Decimal:
        data = selector("vaultBalance2(address,address,bytes32)") + encode(
            ["address", "address", "bytes32"], [owner, token, vault_id]
        )
        return float_to_decimal(await self.call(orderbook, "0x" + data.hex()))

    async def nonce(self, block: str = "latest") -> int:
        return int(await self.rpc("eth_getTransactionCount", [self.address, block]), 16)

    # -- sending ------------------------------------------------------------------

    async def prepare(self, to: str, data: str) -> PreparedTx:
        """Estimate (a revert here ends the step before anything is sent), price, sign."""
        account = self.account
        if account is None:
            raise ConfigError("rebalancing", "no signing key configured")
        try:
            gas = int(
                await self.rpc(
                    "eth_estimateGas", [{"from": account.address, "to": to, "data": data}]
                ),
                16,
            )
        except RpcError as exc:
            raise TransactionReverted(None, decode_revert(_revert_data(exc.error))) from None
        block = await self.rpc("eth_getBlockByNumber", ["latest", False])
        base = int(block.get("baseFeePerGas", "0x0"), 16)
        try:
            tip = int(await self.rpc("eth_maxPriorityFeePerGas", []), 16)
        except RpcError:
            tip = 1_000_000
        async with self._lock:
            pending = int(
                await self.rpc("eth_getTransactionCount", [account.address, "pending"]), 16
            )
            nonce = max(pending, self._next_nonce or 0)
            self._next_nonce = nonce + 1
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": to_checksum_address(to),
            "data": data,
            "value": 0,
            "gas": gas * 6 // 5 + 10_000,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": base * 2 + tip,
        }
        signed = account.sign_transaction(tx)
        return PreparedTx(
            "0x" + bytes(signed.hash).hex(), nonce, "0x" + bytes(signed.raw_transaction).hex()
        )

    async def broadcast(self, tx: PreparedTx) -> None:
        try:
            await self.rpc("eth_sendRawTransaction", [tx.raw])
        except RpcError as exc:
            text = str(exc).lower()
            if "already known" in text or "already imported" in text:
                return
            if "nonce too low" in text:
                # mined already (ours) or replaced (someone else's): the receipt says which
                return
            raise

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        found = await self.rpc("eth_getTransactionReceipt", [tx_hash])
        return found if isinstance(found, dict) else None

    async def settle(self, tx: PreparedTx, wait: float = 120.0) -> dict[str, Any]:
        """Wait for ``tx``'s receipt with the configured confirmations; re-broadcast if dropped.

        Raises :class:`TransactionReverted` (with the decoded reason) or
        :class:`TransactionReplaced` when its nonce went to another transaction.
        """
        deadline = time.monotonic() + wait
        rebroadcast_at = time.monotonic() + 2.0
        while True:
            receipt = await self.receipt(tx.tx_hash)
            if receipt is not None:
                mined = int(receipt["blockNumber"], 16)
                head = int(await self.rpc("eth_blockNumber", []), 16)
                if head - mined + 1 >= self.confirmations:
                    if receipt.get("status") != "0x1":
                        raise TransactionReverted(tx.tx_hash, await self._replay_reason(receipt))
                    return receipt
            elif await self.nonce("latest") > tx.nonce:
                # the nonce is used but not by us (no receipt for our hash)
                if await self.receipt(tx.tx_hash) is None:
                    raise TransactionReplaced(
                        f"nonce {tx.nonce} was used by another transaction; {tx.tx_hash} dropped"
                    )
            elif time.monotonic() >= rebroadcast_at:
                await self.broadcast(tx)  # dropped from the pool: same bytes, same hash
                rebroadcast_at = time.monotonic() + 5.0
            if time.monotonic() > deadline:
                raise TimeoutError(f"no receipt for {tx.tx_hash} within {wait}s")
            await asyncio.sleep(0.1)

    async def _replay_reason(self, receipt: dict[str, Any]) -> str:
        tx = await self.rpc("eth_getTransactionByHash", [receipt["transactionHash"]])
        try:
            await self.rpc(
                "eth_call",
                [{"from": tx["from"], "to": tx["to"], "data": tx["input"]}, receipt["blockNumber"]],
            )
        except RpcError as exc:
            return decode_revert(_revert_data(exc.error))
        return "reverted (no reason on replay)"


def withdrawn_units(receipt: dict[str, Any], owner: str, token: str) -> int | None:
    """``baseUnitsSent`` of the ``WithdrawV2`` in ``receipt`` for (owner, token), if any."""
    for entry in receipt.get("logs", []):
        if entry.get("topics", [None])[0] != WITHDRAW_V2_TOPIC:
            continue
        sender, tok, _vault, _target, _actual, units = decode(
            ["address", "address", "bytes32", "bytes32", "bytes32", "uint256"],
            bytes.fromhex(entry["data"][2:]),
        )
        if sender.lower() == owner.lower() and tok.lower() == token.lower():
            return int(units)
    return None


def deposited_units(receipt: dict[str, Any], owner: str, token: str) -> int | None:
    for entry in receipt.get("logs", []):
        if entry.get("topics", [None])[0] != DEPOSIT_V2_TOPIC:
            continue
        sender, tok, _vault, units = decode(
            ["address", "address", "bytes32", "uint256"], bytes.fromhex(entry["data"][2:])
        )
        if sender.lower() == owner.lower() and tok.lower() == token.lower():
            return int(units)
    return None

"""The transaction sender on real anvil: dropped, replaced, reverted; keys never shown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_account import Account
from st0x_testing.raindex_devnet import Anvil, Chain, start_anvil

from st0x_liquidity.errors import ConfigError
from st0x_liquidity.rebalancing.chain import (
    ChainClient,
    JsonRpc,
    TransactionReplaced,
    TransactionReverted,
    decode_revert,
    erc20_transfer,
    load_account,
)


@pytest.fixture
async def chain() -> AsyncIterator[tuple[Anvil, Chain, str, ChainClient]]:
    anvil = start_anvil()
    devnet = await Chain.connect(anvil.http_url)
    token = await devnet.deploy("TestERC20", "Tokenized AAPL", "tAAPL", 18)
    account = Account.create()
    await devnet.rpc("anvil_setBalance", [account.address, hex(10**20)])
    client = ChainClient(JsonRpc(anvil.http_url), account, 31337, confirmations=2)
    try:
        yield anvil, devnet, token, client
    finally:
        await client.close()
        await devnet.close()
        anvil.stop()


@pytest.mark.asyncio
async def test_dropped_transaction_is_rebroadcast_with_the_same_hash(chain: tuple) -> None:  # type: ignore[type-arg]
    _anvil, devnet, token, client = chain
    await devnet.rpc("evm_setAutomine", [False])
    tx = await client.prepare(token, erc20_transfer("0x" + "11" * 20, 0))
    await client.broadcast(tx)
    await devnet.rpc("anvil_dropTransaction", [tx.tx_hash])
    await devnet.rpc("evm_setIntervalMining", [1])
    receipt = await client.settle(tx, wait=30)
    assert receipt["transactionHash"] == tx.tx_hash and receipt["status"] == "0x1"


@pytest.mark.asyncio
async def test_a_nonce_taken_by_another_transaction_is_reported_replaced(chain: tuple) -> None:  # type: ignore[type-arg]
    anvil, _devnet, token, client = chain
    ours = await client.prepare(token, erc20_transfer("0x" + "11" * 20, 0))
    other = ChainClient(JsonRpc(anvil.http_url), client.account, 31337)
    theirs = await other.prepare(token, erc20_transfer("0x" + "22" * 20, 0))
    assert theirs.nonce == ours.nonce and theirs.tx_hash != ours.tx_hash
    await other.broadcast(theirs)
    await other.settle(theirs)
    await other.close()
    with pytest.raises(TransactionReplaced):
        await client.settle(ours, wait=10)


@pytest.mark.asyncio
async def test_a_revert_is_decoded_before_anything_is_sent(chain: tuple) -> None:  # type: ignore[type-arg]
    _anvil, devnet, token, client = chain
    before = await client.nonce()
    with pytest.raises(TransactionReverted) as info:
        await client.prepare(token, erc20_transfer("0x" + "11" * 20, 10**18))
    assert info.value.reason == "balance"
    assert await client.nonce() == before
    del devnet


def test_custom_errors_decode_by_name() -> None:
    from eth_abi.abi import encode
    from eth_utils.crypto import keccak

    assert decode_revert("0x" + keccak(text="SameOwner()")[:4].hex()) == "SameOwner()"
    token = "0x" + "ab" * 20
    v6 = keccak(text="ZeroVaultId(address,address)")[:4] + encode(["address"] * 2, [token, token])
    assert decode_revert(v6) == f"ZeroVaultId({token}, {token})"
    both = keccak(text="ZeroDepositAmount(address,address,bytes32)")[:4]
    args = encode(["address", "address", "bytes32"], [token, token, b"\x00" * 31 + b"\x01"])
    assert decode_revert(both + args).startswith(f"ZeroDepositAmount({token}, {token}, 0000")
    # the test orderbook's own errors are not the real interface's: shown raw
    test_only = keccak(text="InsufficientVault(address,address,bytes32)")[:4] + args
    assert decode_revert(test_only).startswith("unknown error 0x")
    assert decode_revert("0x12345678").startswith("unknown error")
    assert decode_revert(None) == "no revert data"


def test_keys_come_from_keystore_or_env_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account.create()
    key_hex = "0x" + bytes(account.key).hex()
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw-123")))
    monkeypatch.setenv("PW", "pw-123")
    assert load_account(str(keystore), "PW", "K").address == account.address
    monkeypatch.setenv("PW", "wrong")
    with pytest.raises(ConfigError) as bad:
        load_account(str(keystore), "PW", "K")
    assert "wrong" not in str(bad.value)
    monkeypatch.setenv("K", key_hex)
    assert load_account("", "PW", "K").address == account.address
    monkeypatch.setenv("K", key_hex[:-2] + "zz")
    with pytest.raises(ConfigError) as err:
        load_account("", "PW", "K")
    assert key_hex[4:20] not in str(err.value)
    monkeypatch.delenv("K")
    with pytest.raises(ConfigError):
        load_account("", "PW", "K")


@pytest.mark.asyncio
async def test_v6_vault_call_reverts_are_decoded_with_the_real_interface(chain: tuple) -> None:  # type: ignore[type-arg]
    """The V6 test book reverts deposit4(vault 0) with IRaindexV6's ZeroVaultId; the runtime
    names it from the packaged interface ABI (not from the test contract's artifact)."""
    from decimal import Decimal

    from st0x_liquidity.rebalancing.chain import vault_deposit, vault_withdraw

    _anvil, devnet, token, client = chain
    book = await devnet.deploy("TestRaindexV6")
    with pytest.raises(TransactionReverted) as info:
        await client.prepare(book, vault_deposit(token, b"\x00" * 32, Decimal(1), "v6"))
    sender, tok = client.address.lower(), token.lower()
    assert info.value.reason == f"ZeroVaultId({sender}, {tok})"
    with pytest.raises(TransactionReverted) as info:
        await client.prepare(book, vault_withdraw(token, b"\x00" * 31 + b"\x01", Decimal(0), "v6"))
    assert info.value.reason.startswith(f"ZeroWithdrawTargetAmount({sender}, {tok}, ")
    # V5 calldata on the V6 book: no such function (no revert data to decode)
    with pytest.raises(TransactionReverted):
        await client.prepare(book, vault_deposit(token, b"\x00" * 31 + b"\x01", Decimal(1), "v5"))

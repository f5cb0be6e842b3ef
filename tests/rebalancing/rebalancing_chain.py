"""A real anvil chain, the project's token and orderbook, and the fake Broker API wired to it."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from eth_account import Account
from rebalancing_support import KEY_ENV
from st0x_testing.fake_alpaca_broker import ACCOUNT_ID, FakeAlpacaBroker
from st0x_testing.raindex_devnet import (
    ORDERBOOK_CONTRACTS,
    OTHER_MAKER,
    Anvil,
    Chain,
    calldata,
    start_anvil,
)

from st0x_liquidity.config import AppConfig, load_config
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.raindex.floats import float_to_decimal, scale_units
from st0x_liquidity.rebalancing.chain import TRANSFER_TOPIC, vault_id_bytes
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.operations import OperationRunner
from st0x_liquidity.rebalancing.runtime import build_runner

KEY = "CKREBALANCE0000001"
SECRET = "rebalance-secret-0123456789"
ISSUER = OTHER_MAKER
REDEMPTION_WALLET = "0x000000000000000000000000000000000000dEaD"
VAULT_ID = "0xfab"


@attrs.define
class Env:
    tmp: Path
    anvil: Anvil
    chain: Chain
    token: str
    orderbook: str
    key: str
    wallet: str
    fake: FakeAlpacaBroker
    layout: str = "v5"
    """``v5``, ``v6`` (vault 0xfab) or ``v6-vaultless`` (vault id 0: the wallet)."""
    mint_to: str | None = None
    """Where the fake issuer sends minted tokens (None: the wallet asked for)."""

    @property
    def config_path(self) -> Path:
        return self.tmp / "config.toml"

    def config(self) -> AppConfig:
        return load_config(self.config_path, load_registry(), env={})

    async def runner(self, log: RebalancingLog) -> OperationRunner:
        os.environ[KEY_ENV] = self.key
        return await build_runner(self.config(), log)

    @property
    def interface(self) -> str:
        return self.layout.partition("-")[0]

    @property
    def vaultless(self) -> bool:
        return self.layout.endswith("-vaultless")

    @property
    def vault_id(self) -> str:
        return "0x0" if self.vaultless else VAULT_ID

    async def vault(self) -> Decimal:
        (raw,) = await self.chain.call(
            ORDERBOOK_CONTRACTS[self.interface],
            self.orderbook,
            "vaultBalance2",
            self.wallet,
            self.token,
            vault_id_bytes(self.vault_id),
        )
        return float_to_decimal(raw)

    async def onchain(self) -> Decimal:
        """What the maker's orders can trade: the vault, or the wallet when vaultless."""
        return await self.balance(self.wallet) if self.vaultless else await self.vault()

    async def balance(self, owner: str) -> Decimal:
        (units,) = await self.chain.call("TestERC20", self.token, "balanceOf", owner)
        return scale_units(int(units), 18)

    async def logs(self, topic: str, address: str) -> list[dict[str, Any]]:
        found = await self.chain.rpc(
            "eth_getLogs", [{"address": address, "fromBlock": "0x0", "topics": [topic]}]
        )
        return list(found)

    async def close(self) -> None:
        await self.fake.stop()
        await self.chain.close()
        self.anvil.stop()


async def make_env(
    tmp: Path,
    *,
    shares: Decimal = Decimal(100),
    toml: str = "",
    layout: str = "v5",
    **rebalancing: str,
) -> Env:
    """``layout``: the V5 or V6 test orderbook (``[evm] orderbook_interface``), and with
    ``v6-vaultless`` the pinned AAPL vault is id 0 (the wallet)."""
    anvil = start_anvil()
    chain = await Chain.connect(anvil.http_url)
    token = await chain.deploy("TestERC20", "Tokenized AAPL", "tAAPL", 18)
    interface = layout.partition("-")[0]
    orderbook = await chain.deploy(ORDERBOOK_CONTRACTS[interface])
    account = Account.create()
    await chain.rpc("anvil_setBalance", [account.address, hex(10**20)])
    fake = FakeAlpacaBroker(key=KEY, secret=SECRET)
    fake.positions["AAPL"] = shares
    fake.mint_delay = 0.1
    fake.redeem_delay = 0.1
    env = Env(
        tmp,
        anvil,
        chain,
        token,
        orderbook,
        "0x" + bytes(account.key).hex(),
        str(account.address),
        fake,
        layout,
    )

    async def mint_tokens(symbol: str, qty: Decimal, wallet: str) -> str:
        units = int(qty.scaleb(18))
        to = env.mint_to or wallet
        receipt = await chain.send(ISSUER, token, calldata("TestERC20", "mint", to, units))
        return str(receipt["transactionHash"])

    async def watch() -> list[tuple[str, str, Decimal]]:
        topic_to = "0x" + "0" * 24 + REDEMPTION_WALLET[2:].lower()
        logs = await chain.rpc(
            "eth_getLogs",
            [{"address": token, "fromBlock": "0x0", "topics": [TRANSFER_TOPIC, None, topic_to]}],
        )
        return [
            (str(e["transactionHash"]), "AAPL", scale_units(int(e["data"], 16), 18)) for e in logs
        ]

    fake.mint_tokens = mint_tokens
    fake.watch_redemptions = watch
    await fake.start()
    extra = "".join(f"{k} = {v}\n" for k, v in rebalancing.items())
    # without [evm] the orderbook interface is V5, the default
    evm = (
        f'[evm]\nws_rpc_url = "{anvil.ws_url}"\norderbook = "{orderbook}"\n'
        f'order_owner = "{account.address}"\norderbook_interface = "{interface}"\n'
        if interface != "v5"
        else ""
    )
    (tmp / "fills.jsonl").touch()
    env.config_path.write_text(
        'database_url = "st0x.db"\n'
        '[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        '[broker]\ntype = "alpaca-broker-api"\n'
        f'api_key = "{KEY}"\napi_secret = "{SECRET}"\naccount_id = "{ACCOUNT_ID}"\n'
        f'base_url = "{fake.base_url}"\nbackoff_initial = 0.01\nbackoff_max = 0.05\n'
        "max_attempts = 1\ntimeout = 2.0\n" + evm + "[rebalancing]\n"
        f'rpc_url = "{anvil.http_url}"\norderbook = "{orderbook}"\nchain_id = 31337\n'
        f'wallet = "{account.address}"\nredemption_wallet = "{REDEMPTION_WALLET}"\n'
        "poll_interval = 0.05\npoll_timeout = 5\ncooldown = 0\n"
        + extra
        + f'[rebalancing.vaults.AAPL]\ntoken = "{token}"\nvault_id = "{env.vault_id}"\n'
        + toml
    )
    return env

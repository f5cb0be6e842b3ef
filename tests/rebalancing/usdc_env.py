"""Two anvil chains with CCTP V2, the orderbook on Base, a fake Iris and the fake Broker API.

The Ethereum stand-in (domain 0) carries Alpaca's side: the fake's withdrawals are
real USDC transfers from an exchange hot wallet (anvil's TAKER) and its deposits are
the USDC ``Transfer`` logs to its deposit address. The Base stand-in (domain 6)
carries the orderbook and the market maker's USDC vault. Fake delays are zero.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from eth_account import Account
from rebalancing_support import KEY_ENV
from st0x_testing.cctp_devnet import CctpPair, CctpSide, mint_usdc, start_cctp_pair, usdc_balance
from st0x_testing.fake_alpaca_broker import ACCOUNT_ID, FakeAlpacaBroker
from st0x_testing.fake_iris import FakeIris
from st0x_testing.raindex_devnet import ORDERBOOK_CONTRACTS, TAKER

from st0x_liquidity.cctp.contracts import DEPOSIT_FOR_BURN_TOPIC, MINT_AND_WITHDRAW_TOPIC
from st0x_liquidity.config import AppConfig, load_config
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.protocols import Executor
from st0x_liquidity.raindex.floats import scale_units
from st0x_liquidity.rebalancing.chain import (
    DEPOSIT_V2_TOPIC,
    TRANSFER_TOPIC,
    ChainClient,
    JsonRpc,
    erc20_approve,
    erc20_transfer,
    vault_deposit,
    vault_id_bytes,
)
from st0x_liquidity.rebalancing.keeper import InventoryKeeper
from st0x_liquidity.rebalancing.log import RebalancingLog
from st0x_liquidity.rebalancing.runtime import build_runner
from st0x_liquidity.rebalancing.state import OperationState
from st0x_liquidity.rebalancing.usdc_runner import UsdcRunner
from st0x_liquidity.registry import ExecutorContext
from st0x_liquidity.store.sqlite import SqliteStore

KEY = "CKUSDC00000000001"
SECRET = "usdc-secret-0123456789"
USDC_VAULT = "0xc0c"
DEPOSIT_ADDRESS = "0x00000000000000000000000000000000000a1bca"
HOT_WALLET = TAKER


def _topic(address: str) -> str:
    return "0x" + "0" * 24 + address[2:].lower()


@attrs.define
class UsdcEnv:
    tmp: Path
    pair: CctpPair
    orderbook: str
    key: str
    wallet: str
    fake: FakeAlpacaBroker
    iris: FakeIris
    layout: str = "v5"
    """``v5``, ``v6`` (USDC vault 0xc0c) or ``v6-vaultless`` (vault id 0: the Base wallet)."""

    @property
    def interface(self) -> str:
        return self.layout.partition("-")[0]

    @property
    def vaultless(self) -> bool:
        return self.layout.endswith("-vaultless")

    @property
    def usdc_vault(self) -> str:
        return "0x0" if self.vaultless else USDC_VAULT

    @property
    def eth(self) -> CctpSide:
        return self.pair.ethereum

    @property
    def base(self) -> CctpSide:
        return self.pair.base

    @property
    def config_path(self) -> Path:
        return self.tmp / "config.toml"

    def config(self) -> AppConfig:
        return load_config(self.config_path, load_registry(), env={})

    async def runner(self, log: RebalancingLog) -> UsdcRunner:
        os.environ[KEY_ENV] = self.key
        return await build_runner(self.config(), log)

    async def executor(self, config: AppConfig, store: SqliteStore) -> Executor:
        """The Broker API executor of ``config``, built as ``run`` builds it, started."""
        made = (
            load_registry()
            .executors["alpaca-broker-api"]
            .factory(config.broker, ExecutorContext(config, store))
        )
        await made.start()
        return made

    async def maker(self, side: CctpSide) -> ChainClient:
        return ChainClient(
            JsonRpc(side.rpc_url), Account.from_key(self.key), side.deployment.chain_id
        )

    async def vault(self) -> Decimal:
        """The USDC the maker's orders trade: its vault, or (vaultless) its Base wallet."""
        if self.vaultless:
            return await self.balance(self.base, self.wallet)
        client = await self.maker(self.base)
        try:
            return await client.vault_balance(
                self.orderbook,
                self.wallet,
                self.base.deployment.usdc,
                vault_id_bytes(self.usdc_vault),
            )
        finally:
            await client.close()

    async def balance(self, side: CctpSide, owner: str) -> Decimal:
        return scale_units(await usdc_balance(side.chain, side.deployment, owner), 6)

    async def logs(self, side: CctpSide, topic: str, address: str) -> list[dict[str, Any]]:
        found = await side.chain.rpc(
            "eth_getLogs", [{"address": address, "fromBlock": "0x0", "topics": [topic]}]
        )
        return list(found)

    async def counts(self) -> dict[str, int]:
        """Burns, mints and vault moves on both chains, conversions and withdrawals at the fake."""
        counts: dict[str, int] = {}
        for side in (self.eth, self.base):
            d = side.deployment
            burns = await self.logs(side, DEPOSIT_FOR_BURN_TOPIC, d.token_messenger)
            mints = await self.logs(side, MINT_AND_WITHDRAW_TOPIC, d.token_messenger)
            counts[f"{side.name}_burns"] = len(burns)
            counts[f"{side.name}_mints"] = len(mints)
        counts["vault_deposits"] = len(await self.logs(self.base, DEPOSIT_V2_TOPIC, self.orderbook))
        counts["conversions"] = sum(1 for o in self.fake.orders.values() if o.symbol == "USDCUSD")
        counts["withdrawals"] = sum(1 for t in self.fake.transfers if t["direction"] == "OUTGOING")
        counts["deposits"] = sum(1 for t in self.fake.transfers if t["direction"] == "INCOMING")
        return counts

    async def deposit_to_vault(self, amount: Decimal) -> None:
        """Put ``amount`` USDC (freshly minted) into the market maker's vault on Base (its
        wallet when vaultless)."""
        d = self.base.deployment
        await mint_usdc(self.base.chain, d, self.wallet, int(amount.scaleb(6)))
        client = await self.maker(self.base)
        vault = vault_id_bytes(self.usdc_vault)
        calls = [(d.usdc, erc20_approve(self.orderbook, 2**256 - 1))]
        if not self.vaultless:
            calls.append((self.orderbook, vault_deposit(d.usdc, vault, amount, self.interface)))
        try:
            for to, data in calls:
                tx = await client.prepare(to, data)
                await client.broadcast(tx)
                await client.settle(tx)
        finally:
            await client.close()

    async def close(self) -> None:
        await self.fake.stop()
        await self.iris.stop()
        await self.pair.stop()


def cctp_toml(env: UsdcEnv, **overrides: str) -> str:
    e, b = env.eth.deployment, env.base.deployment
    keys = {
        "ethereum_rpc_url": f'"{env.eth.rpc_url}"',
        "ethereum_chain_id": str(e.chain_id),
        "ethereum_confirmations": "1",
        "ethereum_usdc": f'"{e.usdc}"',
        "base_usdc": f'"{b.usdc}"',
        "ethereum_token_messenger": f'"{e.token_messenger}"',
        "ethereum_message_transmitter": f'"{e.message_transmitter}"',
        "base_token_messenger": f'"{b.token_messenger}"',
        "base_message_transmitter": f'"{b.message_transmitter}"',
        "ethereum_domain": str(e.domain),
        "base_domain": str(b.domain),
        "iris_url": f'"{env.iris.url}"',
        "usdc_vault_id": f'"{env.usdc_vault}"',
        "min_withdrawal": '"10"',
        "attestation_interval": "0.02",
        "attestation_deadline": "60",
        "fast_window": "30",
        "conversion_interval": "0.02",
        "conversion_timeout": "30",
        "transfer_interval": "0.02",
        "transfer_timeout": "30",
        **overrides,
    }
    return "[rebalancing.cctp]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


def write_config(env: UsdcEnv, *, rebalancing: str = "", broker: str = "", **cctp: str) -> None:
    env.config_path.write_text(
        'database_url = "st0x.db"\n'
        '[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        '[broker]\ntype = "alpaca-broker-api"\n'
        f'api_key = "{KEY}"\napi_secret = "{SECRET}"\naccount_id = "{ACCOUNT_ID}"\n'
        f'base_url = "{env.fake.base_url}"\nbackoff_initial = 0.01\nbackoff_max = 0.05\n'
        "max_attempts = 1\ntimeout = 5.0\n"
        + broker
        + (
            f'[evm]\nws_rpc_url = "{env.base.rpc_url}"\norderbook = "{env.orderbook}"\n'
            f'order_owner = "{env.wallet}"\norderbook_interface = "{env.interface}"\n'
            if env.interface != "v5"
            else ""
        )
        + "[rebalancing]\n"
        f'rpc_url = "{env.base.rpc_url}"\norderbook = "{env.orderbook}"\n'
        f"chain_id = {env.base.deployment.chain_id}\n"
        f'wallet = "{env.wallet}"\n'
        "poll_interval = 0.02\npoll_timeout = 10\ncooldown = 0\n"
        + rebalancing
        + cctp_toml(env, **cctp)
    )


async def make_usdc_env(
    tmp: Path, *, cash: Decimal = Decimal(1000), layout: str = "v5", **cctp: str
) -> UsdcEnv:
    """``layout``: the V5 or V6 test orderbook on Base; ``v6-vaultless``: USDC vault id 0."""
    pair = await start_cctp_pair(tmp)
    try:
        orderbook = await pair.base.chain.deploy(ORDERBOOK_CONTRACTS[layout.partition("-")[0]])
        account = Account.create()
        for side in pair.sides:
            await side.chain.rpc("anvil_setBalance", [account.address, hex(10**20)])
        iris = FakeIris(attester_keys=[pair.attester_key])
        for side in pair.sides:
            iris.add_chain(side.domain, side.rpc_url, side.deployment.message_transmitter)
        await iris.start()
    except BaseException:
        await pair.stop()
        raise
    eth = pair.ethereum

    async def send_usdc(address: str, amount: Decimal) -> str:
        data = erc20_transfer(address, int(amount.scaleb(6)))
        receipt = await eth.chain.send(HOT_WALLET, eth.deployment.usdc, data)
        return str(receipt["transactionHash"])

    async def watch_deposits() -> list[tuple[str, str, Decimal]]:
        logs = await eth.chain.rpc(
            "eth_getLogs",
            [
                {
                    "address": eth.deployment.usdc,
                    "fromBlock": "0x0",
                    "topics": [TRANSFER_TOPIC, None, _topic(DEPOSIT_ADDRESS)],
                }
            ],
        )
        return [
            (
                str(x["transactionHash"]),
                "0x" + str(x["topics"][1])[-40:],
                scale_units(int(x["data"], 16), 6),
            )
            for x in logs
        ]

    fake = FakeAlpacaBroker(
        key=KEY,
        secret=SECRET,
        deposit_address=DEPOSIT_ADDRESS,
        hot_wallet=HOT_WALLET,
        send_usdc=send_usdc,
        watch_deposits=watch_deposits,
    )
    fake.cash = cash
    fake.conversion_delay = 0.0
    fake.withdrawal_delay = 0.0
    fake.deposit_delay = 0.0
    fake.watch_interval = 0.02
    await fake.start()
    env = UsdcEnv(
        tmp,
        pair,
        orderbook,
        "0x" + bytes(account.key).hex(),
        str(account.address),
        fake,
        iris,
        layout,
    )
    await fake_whitelist(env)
    (tmp / "fills.jsonl").touch()
    write_config(env, **cctp)
    return env


async def fake_whitelist(env: UsdcEnv) -> None:
    """The market maker's wallet, approved for USDC withdrawals (as an operator does once)."""
    env.fake.whitelist.append(
        {
            "id": str(uuid.uuid4()),
            "address": env.wallet,
            "asset": "USDC",
            "chain": "ETH",
            "status": "APPROVED",
            "created_at": "2026-01-01T00:00:00Z",
        }
    )


async def run_usdc(runner: UsdcRunner, kind: str, quantity: str) -> OperationState:
    """Request a ``kind`` USDC move of ``quantity`` (as the CLI does) and run it to its end."""
    operation_id = await runner.request(kind, "USDC", Decimal(quantity), "cli")
    return await asyncio.wait_for(runner.run(operation_id), 60)


async def usdc_inventory(log: RebalancingLog) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The USDC model: onchain available and inflight, offchain available and inflight."""
    inv = (await InventoryKeeper(log).refresh()).get("USDC")
    return (
        inv.onchain.available,
        inv.onchain.inflight,
        inv.offchain.available,
        inv.offchain.inflight,
    )

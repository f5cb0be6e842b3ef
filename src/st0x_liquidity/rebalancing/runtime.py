"""Builds the pieces that act (chain client, custodian, runner) from a config."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .chain import ChainClient, is_vaultless, load_account, vault_id_bytes
from .config import RebalancingConfig
from .inventory import USDC, InventoryBook
from .log import RebalancingLog
from .service import OnchainReader
from .usdc_runner import UsdcRunner

if TYPE_CHECKING:
    from ..config import AppConfig
    from ..protocols import Custodian


def custodian_for(config: AppConfig) -> Custodian | None:
    from ..plugins import get_plugin_manager

    found: Custodian | None = get_plugin_manager().hook.st0x_custodian(config=config)
    return found


def orderbook_interface(config: AppConfig) -> str:
    """``[evm] orderbook_interface`` (``v5`` without an ``[evm]`` section): the rebalancing
    orderbook is the one the fills come from."""
    return config.evm.orderbook_interface if config.evm is not None else "v5"


async def build_runner(config: AppConfig, log: RebalancingLog) -> UsdcRunner:
    section: RebalancingConfig | None = config.sections.get("rebalancing")
    if section is None:
        raise ConfigError("rebalancing", "section is missing")
    if not section.rpc_url or not section.orderbook:
        raise ConfigError("rebalancing", "rpc_url and orderbook are required to mint or redeem")
    custodian = custodian_for(config)
    if custodian is None:
        raise ConfigError(
            "broker.type", f"{config.broker_type!r} offers no tokenization (custodian)"
        )
    account = load_account(section.keystore, section.keystore_password_env, section.private_key_env)
    if section.wallet and section.wallet.lower() != str(account.address).lower():
        raise ConfigError("rebalancing.wallet", "is not the address of the signing key")
    if section.redemption_wallet.lower() == str(account.address).lower():
        raise ConfigError(
            "rebalancing.redemption_wallet", "must be the issuer's wallet, not the market maker's"
        )
    chain = await ChainClient.connect(
        section.rpc_url, account, section.chain_id, section.confirmations
    )
    interface = orderbook_interface(config)
    cctp = section.cctp
    if cctp is None:
        return UsdcRunner(log, section, chain, custodian, orderbook_interface=interface)
    from ..cctp.iris import IrisClient

    # the same key signs on Ethereum: the withdrawal lands in the market maker's wallet
    eth = await ChainClient.connect(
        cctp.ethereum_rpc_url, account, cctp.ethereum_chain_id, cctp.ethereum_confirmations
    )
    return UsdcRunner(
        log,
        section,
        chain,
        custodian,
        eth=eth,
        iris=IrisClient(cctp.iris_url),
        orderbook_interface=interface,
    )


def onchain_reader(runner: UsdcRunner, book: InventoryBook) -> OnchainReader:
    """Snapshot reader: (vault balances, wallet balances) per asset, over every pinned and
    discovered vault of the asset (summed) and the market-maker wallet. A vaultless "vault"
    (V6, vault id 0) holds nothing itself: its orders trade the wallet, counted once."""
    section = runner.config
    chain = runner.chain

    async def read() -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        from ..raindex.floats import scale_units

        where: dict[str, set[tuple[str, str]]] = {}

        def add(asset: str, token: str, vault_id: str) -> None:
            # one spelling per vault id ("0xfab" pinned, 64 digits discovered): counted once
            key = (token.lower(), "0x" + vault_id_bytes(vault_id).hex())
            where.setdefault(asset, set()).add(key)

        for asset, pin in section.vaults.items():
            add(asset, pin.token, pin.vault_id)
        for asset, found in book.vaults.items():
            for token, vault_id in found:
                add(asset, token, vault_id)
        cctp = section.cctp
        if cctp is not None:
            add(USDC, cctp.base_usdc, cctp.usdc_vault_id)
        vaults: dict[str, Decimal] = {}
        wallets: dict[str, Decimal] = {}
        for asset, pairs in sorted(where.items()):
            decimals = 6 if asset == USDC else 18
            total = Decimal(0)
            for token, vault_id in sorted(pairs):
                raw = vault_id_bytes(vault_id)
                if is_vaultless(runner.orderbook_interface, raw):
                    continue  # the wallet's balance of the token, read below
                total += await chain.vault_balance(section.orderbook, runner.wallet, token, raw)
            vaults[asset] = total
            held = Decimal(0)
            for token in sorted({t for t, _ in pairs}):
                held += scale_units(await chain.erc20_balance(token, runner.wallet), decimals)
            if asset == USDC and cctp is not None and runner.eth is not None:
                # USDC left in the wallet on Ethereum (a failed move) is ours, onchain
                units = await runner.eth.erc20_balance(cctp.ethereum_usdc, runner.wallet)
                held += scale_units(units, decimals)
            wallets[asset] = held
        return vaults, wallets

    return read

"""Builds the pieces that act (chain client, custodian, runner) from a config."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .chain import ChainClient, load_account, vault_id_bytes
from .config import RebalancingConfig
from .inventory import USDC, InventoryBook
from .log import RebalancingLog
from .operations import OperationRunner
from .service import OnchainReader

if TYPE_CHECKING:
    from ..config import AppConfig
    from ..protocols import Custodian


def custodian_for(config: AppConfig) -> Custodian | None:
    from ..plugins import get_plugin_manager

    found: Custodian | None = get_plugin_manager().hook.st0x_custodian(config=config)
    return found


async def build_runner(config: AppConfig, log: RebalancingLog) -> OperationRunner:
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
    return OperationRunner(log, section, chain, custodian)


def onchain_reader(runner: OperationRunner, book: InventoryBook) -> OnchainReader:
    """Snapshot reader: (vault balances, wallet balances) per asset, over every pinned and
    discovered vault of the asset (summed) and the market-maker wallet."""
    section = runner.config
    chain = runner.chain

    async def read() -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        from ..raindex.floats import scale_units

        where: dict[str, set[tuple[str, str]]] = {}
        for asset, pin in section.vaults.items():
            where.setdefault(asset, set()).add((pin.token.lower(), pin.vault_id))
        for asset, found in book.vaults.items():
            where.setdefault(asset, set()).update(found)
        vaults: dict[str, Decimal] = {}
        wallets: dict[str, Decimal] = {}
        for asset, pairs in sorted(where.items()):
            decimals = 6 if asset == USDC else 18
            total = Decimal(0)
            for token, vault_id in sorted(pairs):
                total += await chain.vault_balance(
                    section.orderbook, runner.wallet, token, vault_id_bytes(vault_id)
                )
            vaults[asset] = total
            held = Decimal(0)
            for token in sorted({t for t, _ in pairs}):
                held += scale_units(await chain.erc20_balance(token, runner.wallet), decimals)
            wallets[asset] = held
        return vaults, wallets

    return read

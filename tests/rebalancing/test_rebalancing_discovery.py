"""Vaults discovered from the owner's real fills on anvil (TakeOrderV3 and ClearV3)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from st0x_testing.raindex_devnet import MAKER, Chain, clear, deploy, start_anvil, take

from st0x_liquidity.rebalancing.chain import ChainClient, JsonRpc
from st0x_liquidity.rebalancing.discovery import discover_vaults
from st0x_liquidity.rebalancing.inventory import InventoryBook, vault_for

VAULT = "0x" + "00" * 31 + "01"


@pytest.mark.asyncio
@pytest.mark.parametrize("layout", ["v5", "v6", "v6-vaultless"])
async def test_take_and_clear_reveal_the_owner_vaults(layout: str) -> None:
    """The same on both orderbooks; a vaultless order reveals vault id 0 (its wallet)."""
    interface, _, vaultless = layout.partition("-")
    vault = "0x" + "00" * 32 if vaultless else VAULT
    anvil = start_anvil()
    chain = await Chain.connect(anvil.http_url)
    reader = ChainClient(JsonRpc(anvil.http_url), None, 31337)
    try:
        devnet = await deploy(
            chain,
            {"AAPL": Decimal(200), "TSLA": Decimal(300)},
            interface=interface,
            vaultless=bool(vaultless),
        )
        taken = await take(chain, devnet, "AAPL", False, Decimal(2))
        cleared = await clear(chain, devnet, "TSLA", True, Decimal(1), maker_is_alice=False)
        known: set[tuple[str, str]] = set()
        found = await discover_vaults(
            reader,
            devnet.orderbook,
            MAKER,
            [taken["transactionHash"], cleared["transactionHash"], "0x" + "ab" * 32],
            known=known,
        )
        got = {(e.asset, e.token, e.vault_id) for e in found}
        assert got == {
            ("AAPL", devnet.equities["AAPL"], vault),
            ("USDC", devnet.usdc, vault),
            ("TSLA", devnet.equities["TSLA"], vault),
        }
        again = await discover_vaults(
            reader, devnet.orderbook, MAKER, [taken["transactionHash"]], known=known
        )
        assert again == []
        book = InventoryBook()
        for i, event in enumerate(found):
            book.apply_log(i + 1, event)
        assert vault_for("AAPL", {}, book) == (devnet.equities["AAPL"], vault)
        assert vault_for("AAPL", {"AAPL": ("0xpinned", "0x2")}, book) == ("0xpinned", "0x2")
        assert isinstance(vault_for("MSFT", {}, book), str)
    finally:
        await reader.close()
        await chain.close()
        anvil.stop()

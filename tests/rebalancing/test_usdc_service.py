"""The Rebalancer and USDC decisions without the CCTP table: recorded, never acted on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from st0x_liquidity.rebalancing.config import RebalancingConfig
from st0x_liquidity.rebalancing.events import TriggerDecided
from st0x_liquidity.rebalancing.inventory import Venue
from st0x_liquidity.rebalancing.service import Rebalancer
from st0x_liquidity.rebalancing.triggers import Action
from st0x_liquidity.store.sqlite import SqliteStore


async def test_usdc_decision_without_cctp_is_recorded_with_the_reason(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "st0x.db"):
        pass
    rebalancer = Rebalancer(tmp_path / "st0x.db", RebalancingConfig(cooldown=0), None)
    await rebalancer.open()
    try:
        await rebalancer.keeper.record_snapshot(
            Venue.ONCHAIN, {"USDC": Decimal(100)}, complete=False
        )
        await rebalancer.keeper.record_snapshot(
            Venue.OFFCHAIN, {"USDC": Decimal(1000)}, complete=False
        )
        (decision,) = await rebalancer.check()
        assert decision.action is Action.USDC_TO_ONCHAIN and decision.quantity == Decimal(450)
        await rebalancer.check()  # the same decision again is not recorded twice
        decided = [e for _, _, _, e in await rebalancer.log.read() if isinstance(e, TriggerDecided)]
        assert [(e.action, e.quantity, e.outcome) for e in decided] == [
            ("usdc-to-onchain", Decimal(450), "USDC moves need [rebalancing.cctp] (not configured)")
        ]
        assert rebalancer.started == []
        assert await rebalancer.land_limbo() == []
    finally:
        await rebalancer.close()

"""Property: any interleaving of the core log and the rebalancing log folds to the same book."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from st0x_liquidity.domain.events import (
    FillRecorded,
    HedgeClosed,
    HedgeIntended,
    HedgeProgressed,
    StoredEvent,
)
from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.domain.orders import OrderState
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.rebalancing.events import DriftDetected, Moved, RebalancingEvent
from st0x_liquidity.rebalancing.inventory import InventoryBook

T0 = datetime(2026, 1, 2, 15, tzinfo=UTC)
qty = st.decimals(min_value="0.01", max_value=1000, places=2)
assets = st.sampled_from(["AAPL", "TSLA"])


@st.composite
def core_events(draw: st.DrawFn) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    for n in range(draw(st.integers(0, 12))):
        sym = draw(assets)
        side = draw(st.sampled_from(list(Direction)))
        amount, price = draw(qty), draw(qty)
        fill = Fill(TradeId(f"0x{n + 1:064x}", 0), Symbol(sym), side, amount, price, n, T0)
        out.append(StoredEvent("Position", sym, len(out) + 1, FillRecorded(fill), {}, T0))
        if draw(st.booleans()):
            cid = f"c{n}"
            hedge = side.opposite
            out.append(
                StoredEvent(
                    "Position", sym, 0, HedgeIntended(cid, hedge, amount, price, ()), {}, T0
                )
            )
            part = (amount / 2).quantize(Decimal("0.01"))
            out.append(
                StoredEvent(
                    "Position", sym, 0, HedgeProgressed(cid, hedge, part, price, ()), {}, T0
                )
            )
            out.append(
                StoredEvent(
                    "Position",
                    sym,
                    0,
                    HedgeClosed(cid, hedge, OrderState.FILLED, amount, price, None, (), (), ()),
                    {},
                    T0,
                )
            )
    return out


log_event = st.one_of(
    st.builds(
        Moved,
        st.just("op"),
        assets,
        st.sampled_from(["onchain", "offchain"]),
        st.sampled_from(["reserve", "release", "settle", "arrive", "credit"]),
        qty,
    ),
    st.builds(
        lambda a, v, d: DriftDetected(a, v, Decimal(0), d, d),
        assets,
        st.sampled_from(["onchain", "offchain"]),
        qty,
    ),
)


@settings(max_examples=200)
@given(core=core_events(), log=st.lists(log_event, max_size=12), data=st.data())
def test_interleaving_does_not_matter(
    core: list[StoredEvent], log: list[RebalancingEvent], data: st.DataObject
) -> None:
    straight = InventoryBook()
    for i, stored in enumerate(core):
        straight.apply_core(i + 1, stored)
    for i, event in enumerate(log):
        straight.apply_log(i + 1, event)
    mixed = InventoryBook()
    ci = li = 0
    while ci < len(core) or li < len(log):
        take_core = li >= len(log) or (ci < len(core) and data.draw(st.booleans()))
        if take_core:
            mixed.apply_core(ci + 1, core[ci])
            ci += 1
        else:
            mixed.apply_log(li + 1, log[li])
            li += 1
    assert mixed.assets == straight.assets

"""The minute/exit summary line: counts and unhedged USD to the cent."""

from __future__ import annotations

from decimal import Decimal

from support.fills import fill

from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.engine import EngineStatus
from st0x_liquidity.summary import summary_line, unhedged_usd


def test_unhedged_usd_is_net_times_last_price_over_symbols() -> None:
    aapl, tsla, fresh = SymbolBook(Symbol("AAPL")), SymbolBook(Symbol("TSLA")), SymbolBook(
        Symbol("NVDA")
    )
    aapl.apply_fill(fill(1, "tAAPL", "BUY", "1.5", "200.004"))
    tsla.apply_fill(fill(2, "tTSLA", "SELL", "0.25", "100"))
    assert unhedged_usd([aapl, tsla, fresh]) == Decimal("1.5") * Decimal("200.004") + Decimal("25")
    status = EngineStatus(fills_ingested=2, hedges_placed=1, hedges_filled=1, paused="ops")
    line = summary_line(status, [aapl, tsla, fresh])
    assert line == (
        "fills 2 (duplicates 0, skipped 0); hedges placed 1, filled 1, failed 0; "
        "unhedged 325.01 USD over 2 symbol(s); paused: ops"
    )

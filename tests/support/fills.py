"""Helpers to make fills and replay files for tests."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.domain.symbols import Symbol

T0 = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


def tx(n: int) -> str:
    return f"0x{n:064x}"


def fill(
    n: int, symbol: str, direction: str, amount: str, price: str = "100", log_index: int = 0
) -> Fill:
    return Fill(
        TradeId(tx(n), log_index),
        Symbol.parse(symbol),
        Direction(direction),
        Decimal(amount),
        Decimal(price),
        n,
        T0,
    )


def line(
    n: int, symbol: str, direction: str, amount: str, price: str = "100", log_index: int = 0
) -> dict[str, Any]:
    return {
        "tx_hash": tx(n),
        "log_index": log_index,
        "symbol": symbol,
        "direction": direction,
        "amount": amount,
        "price": price,
        "block_number": n,
        "block_timestamp": "2026-01-02T15:00:00Z",
    }


def write_lines(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    with path.open("a") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def random_lines(count: int, symbols: list[str], seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    base = {s: Decimal(rng.randint(50, 400)) for s in symbols}
    rows = []
    for i in range(count):
        symbol = rng.choice(symbols)
        amount = Decimal(rng.randint(1, 3000)) / 1000
        price = base[symbol] + Decimal(rng.randint(-100, 100)) / 100
        rows.append(
            line(
                i + 1,
                f"t{symbol}",
                rng.choice(["BUY", "SELL"]),
                str(amount),
                str(price),
                rng.randint(0, 3),
            )
        )
    return rows

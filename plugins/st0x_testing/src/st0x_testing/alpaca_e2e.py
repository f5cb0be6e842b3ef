"""The bot's CLI in a child process against a fake broker: end-to-end test support.

Shared by st0x-alpaca's and st0x-alpaca-broker's end-to-end tests, so both use the
same harness: a replay fill line, ``python -m st0x_liquidity run`` started with the secrets
in its environment, its clean exit, the hedge orders it recorded, and the wait for its
first order POST (before a test kills it mid-request).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sized
from pathlib import Path
from typing import Protocol


class HasOrders(Protocol):
    """A fake broker: its orders by id."""

    @property
    def orders(self) -> Sized: ...


def fill_line(
    n: int, symbol: str, direction: str, amount: str, price: str, *, first_block: int = 1000
) -> str:
    """One line of a replay source's ``fills.jsonl``: fill ``n`` in block ``first_block + n``."""
    return json.dumps(
        {
            "tx_hash": f"0x{n:064x}",
            "log_index": 0,
            "symbol": symbol,
            "direction": direction,
            "amount": amount,
            "price": price,
            "block_number": first_block + n,
            "block_timestamp": 1767368000 + n,
        }
    )


async def start_cli(tmp: Path, config: Path, **env: str) -> asyncio.subprocess.Process:
    """``python -m st0x_liquidity run --config-file CONFIG`` in ``tmp``, with ``env``
    (the broker's secrets) added to this process's environment; stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "st0x_liquidity",
        "run",
        "--config-file",
        str(config),
        cwd=tmp,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process) -> str:
    """Wait (up to 120 s) for the bot to exit; it must exit 0 without a traceback. Its
    log (stderr)."""
    _out, err = await asyncio.wait_for(proc.communicate(), 120)
    text = err.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    return text


def hedge_rows(tmp: Path) -> list[tuple[str, str, str, str | None, str]]:
    """(client order id, symbol, state, broker order id, filled quantity) of every
    hedge order in the bot's database, by client order id."""
    db = sqlite3.connect(tmp / "st0x.db")
    try:
        return db.execute(
            "SELECT client_order_id, symbol, state, broker_order_id, filled_quantity "
            "FROM hedge_orders ORDER BY client_order_id"
        ).fetchall()
    finally:
        db.close()


async def wait_for_one_order(proc: asyncio.subprocess.Process, fake: HasOrders) -> None:
    """Wait (up to 60 s, the bot still running) until the bot's order POST reached the
    fake: exactly one order there."""
    deadline = time.monotonic() + 60
    while not fake.orders and time.monotonic() < deadline:
        assert proc.returncode is None
        await asyncio.sleep(0.02)
    assert len(fake.orders) == 1, "the order POST never reached the fake"

"""Shared helpers of the rebalancing tests: a fixed clock, an environment with the bot's
database created in it, and the ``rebalance`` CLI run in a real child process (optionally
SIGKILLed at a crash point), as an operator runs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from st0x_liquidity.rebalancing.operations import CRASH_ENV
from st0x_liquidity.store.sqlite import SqliteStore

T0 = datetime(2026, 1, 2, 15, tzinfo=UTC)
KEY_ENV = "ST0X_REBALANCING_PRIVATE_KEY"


class RunEnv(Protocol):
    """What the helpers need of an environment (``rebalancing_chain.Env``, ``usdc_env.UsdcEnv``)."""

    @property
    def tmp(self) -> Path: ...

    @property
    def key(self) -> str: ...

    @property
    def config_path(self) -> Path: ...

    async def close(self) -> None: ...


E = TypeVar("E", bound=RunEnv)


@contextlib.asynccontextmanager
async def with_database(env: E) -> AsyncIterator[E]:
    """``env`` with the bot's database (``st0x.db``) created, as a bot start does; closed after."""
    try:
        async with SqliteStore(env.tmp / "st0x.db"):
            pass
        yield env
    finally:
        await env.close()


async def rebalance_cli(env: RunEnv, *args: str, crash: str | None = None) -> tuple[int, str]:
    """``st0x_liquidity rebalance ARGS`` in a child process: its exit code, stdout then stderr.
    With ``crash`` the child SIGKILLs itself at that step point (exit code -9)."""
    child_env = {**os.environ, KEY_ENV: env.key}
    child_env.pop(CRASH_ENV, None)
    if crash:
        child_env[CRASH_ENV] = crash
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "st0x_liquidity",
        "rebalance",
        "--config-file",
        str(env.config_path),
        *args,
        env=child_env,
        cwd=env.tmp,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()

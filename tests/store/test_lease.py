"""One engine per database: the lease refuses a second holder and fences a stale one."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.fills import fill

from st0x_liquidity.domain.events import FillRecorded, position_event
from st0x_liquidity.errors import StoreError
from st0x_liquidity.store.lease import LeaseHeldError, LeaseLostError
from st0x_liquidity.store.sqlite import SqliteStore


def _event(n: int) -> list[object]:
    f = fill(n, "tAAPL", "BUY", "1")
    return [position_event(f.symbol, FillRecorded(f))]


async def test_a_second_holder_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "a.db") as first:
        await first.append(_event(1))  # type: ignore[arg-type]
        second = SqliteStore(tmp_path / "a.db")
        with pytest.raises(LeaseHeldError) as refused:
            await second.open()
        message = str(refused.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()} since 20" in message
        assert str(tmp_path / "a.db") in message
        # The first holder is unaffected.
        await first.append(_event(2))  # type: ignore[arg-type]
        assert (await first.positions())[0].fills == 2
    # Released on close: the next one takes it, with a new epoch.
    async with SqliteStore(tmp_path / "a.db") as again:
        assert again.epoch == 2


async def test_readers_and_side_writers_take_no_lease(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "a.db") as engine:
        await engine.append(_event(1))  # type: ignore[arg-type]
        async with SqliteStore(tmp_path / "a.db", read_only=True) as reader:
            assert (await reader.positions())[0].fills == 1
            assert reader.epoch is None
            with pytest.raises(StoreError):
                await reader.append(_event(2))  # type: ignore[arg-type]
        async with SqliteStore(tmp_path / "a.db", lease=False) as side:
            await side.put_blob("plugin", "k", b"v")  # plugin state: not the engine's streams
            with pytest.raises(StoreError, match="lease"):
                await side.append(_event(3))  # type: ignore[arg-type]
        assert (await engine.positions())[0].fills == 1


async def test_a_stale_holder_is_fenced_where_the_lock_is_not_honoured(tmp_path: Path) -> None:
    """A filesystem that ignores flock: the epoch alone keeps writes from interleaving."""
    path = tmp_path / "a.db"
    first = SqliteStore(path)
    await first.open()
    try:
        await first.append(_event(1))  # type: ignore[arg-type]
        first._lock.release()  # what a lock that is not honoured amounts to
        async with SqliteStore(path) as second:
            assert second.epoch == (first.epoch or 0) + 1
            with pytest.raises(LeaseLostError, match="lost the lease"):
                await first.append(_event(2))  # type: ignore[arg-type]
            with pytest.raises(LeaseLostError):
                await first.verify_lease()
            with pytest.raises(LeaseLostError):
                await first.rebuild_views()
            await second.append(_event(3))  # type: ignore[arg-type]
            trades = await second.fetch("SELECT block_number FROM onchain_trades ORDER BY 1")
            assert trades == [(1,), (3,)]  # nothing of the stale holder's second write
    finally:
        await first.close()


_HOLD = """
import asyncio, sys
from st0x_liquidity.store.sqlite import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_sigkilled_holder_does_not_block_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeldError, match=f"pid {holder.pid} on host"):
            _open_and_close(path)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        started = time.monotonic()
        _open_and_close(path)  # at once: the kernel released the lock with the process
        assert time.monotonic() - started < 2
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def _open_and_close(path: Path) -> None:
    import asyncio

    async def go() -> None:
        async with SqliteStore(path):
            pass

    asyncio.run(go())


async def test_the_database_and_its_companions_are_private(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    async with SqliteStore(path) as store:
        await store.append(_event(1))  # type: ignore[arg-type]
        for name in ("a.db", "a.db-wal", "a.db-shm", "a.db-lease"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any directory")
async def test_a_read_only_directory_says_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="permission denied"):
            await SqliteStore(locked / "a.db").open()
    finally:
        locked.chmod(0o700)

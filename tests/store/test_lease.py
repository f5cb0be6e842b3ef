"""One engine per database: the lease refuses a second holder and fences a stale one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from support.fills import fill
from support.stores import OpenStore

from st0x_liquidity.domain.events import FillRecorded, position_event
from st0x_liquidity.errors import StoreError
from st0x_liquidity.store.lease import LeaseHeldError, LeaseLostError
from st0x_liquidity.store.postgres import PostgresStore, redact
from st0x_liquidity.store.schema import LATEST_VERSION
from st0x_liquidity.store.sqlite import SqliteStore


def _event(n: int) -> list[object]:
    f = fill(n, "tAAPL", "BUY", "1")
    return [position_event(f.symbol, FillRecorded(f))]


async def test_a_second_holder_is_refused_and_told_who_holds_it(
    open_store: OpenStore, database: str
) -> None:
    async with open_store() as first:
        await first.append(_event(1))  # type: ignore[arg-type]
        second = open_store()
        with pytest.raises(LeaseHeldError) as refused:
            await second.open()
        message = str(refused.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()} since 20" in message
        assert redact(database) in message
        # The first holder is unaffected.
        await first.append(_event(2))  # type: ignore[arg-type]
        assert (await first.positions())[0].fills == 2
    # Released on close: the next one takes it at once, with a new epoch.
    async with open_store() as again:
        assert again.epoch == 2


async def test_readers_and_side_writers_take_no_lease(open_store: OpenStore) -> None:
    async with open_store() as engine:
        await engine.append(_event(1))  # type: ignore[arg-type]
        async with open_store(read_only=True) as reader:
            assert (await reader.positions())[0].fills == 1
            assert reader.epoch is None
            with pytest.raises(StoreError):
                await reader.append(_event(2))  # type: ignore[arg-type]
        async with open_store(lease=False) as side:
            await side.put_blob("plugin", "k", b"v")  # plugin state: not the engine's streams
            with pytest.raises(StoreError, match="lease"):
                await side.append(_event(3))  # type: ignore[arg-type]
        assert (await engine.positions())[0].fills == 1


@pytest.mark.sqlite
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
from st0x_liquidity.store.postgres import PostgresStore, redact
from st0x_liquidity.store.sqlite import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.sqlite
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


@pytest.mark.sqlite
async def test_the_database_and_its_companions_are_private(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    async with SqliteStore(path) as store:
        await store.append(_event(1))  # type: ignore[arg-type]
        for name in ("a.db", "a.db-wal", "a.db-shm", "a.db-lease"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))


@pytest.mark.sqlite
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


# -- PostgreSQL: an expiring lease instead of flock ------------------------------------


async def test_postgres_a_lapsed_lease_is_taken_over_and_fences_the_old_holder(
    postgres_url: str,
) -> None:
    """A frozen holder (its renewals stopped) loses the lease once it expires."""
    first = PostgresStore(postgres_url, lease_ttl=1.0)
    await first.open()
    try:
        await first.append(_event(1))  # type: ignore[arg-type]
        await first.verify_lease()
        assert first._renewer is not None
        first._renewer.cancel()  # frozen: nothing renews any more
        with pytest.raises(LeaseHeldError):
            await PostgresStore(postgres_url, lease_ttl=1.0).open()
        await asyncio.sleep(1.2)
        with pytest.raises(LeaseLostError, match="not renewed in time"):
            await first.verify_lease()  # no broker call on a lapsed lease
        async with PostgresStore(postgres_url) as second:
            assert second.epoch == 2
            with pytest.raises(LeaseLostError, match="lost the lease"):
                await first.append(_event(2))  # type: ignore[arg-type]
            with pytest.raises(LeaseLostError, match="lost the lease"):
                await first.verify_lease()
            with pytest.raises(LeaseLostError):
                await first.rebuild_views()
            await second.append(_event(3))  # type: ignore[arg-type]
            trades = await second.fetch("SELECT block_number FROM onchain_trades ORDER BY 1")
            assert trades == [(1,), (3,)]
    finally:
        await first.close()


async def test_postgres_a_holder_that_cannot_renew_fences_itself_before_it_lapses(
    postgres_url: str,
) -> None:
    """Broker calls stop ``lease_ttl - fence_margin`` after the last renewal was sent, by the
    holder's own clock: before the server's expiry, with no round trip."""
    first = PostgresStore(postgres_url, lease_ttl=1.0, renew_interval=0.2, fence_margin=0.4)
    await first.open()
    try:
        assert first._renewer is not None
        first._renewer.cancel()  # frozen renewals (a cut connection looks the same)
        sent = first._sent
        await first.verify_lease()
        await asyncio.sleep(max(0.0, sent + 0.65 - time.monotonic()))
        call = asyncio.ensure_future(first.verify_lease())
        await asyncio.sleep(0.1)
        assert not call.done()  # fenced: waits for a renewal
        [(live,)] = await first.fetch("SELECT expires_at > now() FROM lease")
        assert live  # ...while the server still counts it as ours
        with pytest.raises(LeaseLostError, match="not renewed in time"):
            await call
        assert first.lease_lost.is_set()
    finally:
        await first.close()


async def test_postgres_a_long_write_does_not_stop_the_renewals(postgres_url: str) -> None:
    """The fence's row lock (FOR KEY SHARE) lets the holder's own renewals through: a
    rebuild-views longer than the lease must not lose it."""
    from st0x_liquidity.store import postgres_writer

    async with PostgresStore(postgres_url, lease_ttl=0.6) as holder:
        epoch = holder.epoch

        def long_transaction(db: psycopg.Connection[object]) -> None:
            with postgres_writer.transaction(db, epoch):
                time.sleep(1.2)  # two lease lifetimes

        await holder._in_writer(long_transaction)
        assert holder.lost is None
        await holder.verify_lease()
        await holder.append(_event(1))  # type: ignore[arg-type]


async def test_postgres_a_standby_store_waits_and_takes_the_lapsed_lease(
    postgres_url: str,
) -> None:
    async with PostgresStore(postgres_url, lease_ttl=0.6) as holder:
        standby = PostgresStore(postgres_url, lease_ttl=0.6, standby=True)
        await standby.open()  # held: no refusal
        try:
            assert standby.epoch is None
            assert standby.holder is not None and standby.holder.epoch == 1
            assert not await standby.try_take_lease()
            with pytest.raises(StoreError, match="only the holder"):
                await standby.append(_event(1))  # type: ignore[arg-type]
            assert holder._renewer is not None
            holder._renewer.cancel()
            await asyncio.sleep(0.7)  # past the lease's expiry
            assert await standby.try_take_lease()
            assert standby.epoch == 2
            await standby.append(_event(2))  # type: ignore[arg-type]
        finally:
            await standby.close()


async def test_postgres_the_holder_renews_its_lease(postgres_url: str) -> None:
    async with PostgresStore(postgres_url, lease_ttl=0.6) as holder:
        for _ in range(4):
            await asyncio.sleep(0.3)
            await holder.verify_lease()
            [(live,)] = await holder.fetch("SELECT expires_at > now() FROM lease")
            assert live
        with pytest.raises(LeaseHeldError):
            await PostgresStore(postgres_url).open()


def test_postgres_a_sigkilled_holder_blocks_only_until_its_lease_expires(
    postgres_url: str,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_PG, postgres_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeldError, match=f"pid {holder.pid} on host"):
            asyncio.run(_open_close_pg(postgres_url))
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        started = time.monotonic()
        while True:
            try:
                asyncio.run(_open_close_pg(postgres_url))
                break
            except LeaseHeldError:
                assert time.monotonic() - started < 10
                time.sleep(0.2)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


_HOLD_PG = """
import asyncio, sys
from st0x_liquidity.store.postgres import PostgresStore

async def main():
    store = PostgresStore(sys.argv[1], lease_ttl=2.0)
    await store.open()
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def _open_close_pg(url: str) -> None:
    async with PostgresStore(url):
        pass


async def test_postgres_a_newer_schema_is_refused(postgres_url: str) -> None:
    async with PostgresStore(postgres_url) as store:
        assert await store.schema_version() == LATEST_VERSION
    with psycopg.connect(postgres_url) as db:
        db.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'later')")
    with pytest.raises(StoreError, match="newer than this program"):
        await PostgresStore(postgres_url).open()
    with pytest.raises(StoreError, match="newer than this program"):
        await PostgresStore(postgres_url, read_only=True).open()

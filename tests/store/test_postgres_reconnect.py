"""The PostgreSQL store when the server drops its connections: nothing lost, nothing twice.

The server ends the store's sessions (``pg_terminate_backend``, what a
restart does to every connection). A commit whose connection dropped before
it reached the server is written again; one that landed but whose answer was
lost is found by its token and returned as stored, not written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from support.fills import fill

from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.events import FillRecorded, NewEvent, position_event
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.errors import StoreError, StoreUnavailableError
from st0x_liquidity.reporting.pnl import PnlReporter
from st0x_liquidity.store import postgres_writer
from st0x_liquidity.store.lease import LeaseLostError
from st0x_liquidity.store.postgres import PostgresStore


def recorded(n: int, book: SymbolBook) -> NewEvent:
    f = fill(n, "tAAPL", "BUY", f"1.{n}")
    return position_event(f.symbol, FillRecorded(f, book.apply_fill(f)))


def terminate(url: str, pid: int) -> None:
    """End one session from outside, as the server does to all of them when it stops."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def fill_events(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT aggregate_id, sequence, payload FROM events "
            "WHERE event_type = 'FillRecorded' ORDER BY position"
        ).fetchall()


async def test_a_commit_cut_off_before_it_landed_is_written_once(postgres_url: str) -> None:
    book = SymbolBook(Symbol("AAPL"))
    async with PostgresStore(postgres_url) as store:
        await store.append([recorded(1, book)])
        assert store._writer is not None
        terminate(postgres_url, store._writer.info.backend_pid)
        [stored] = await store.append([recorded(2, book)])
        assert stored.sequence == 2
        # The server was there all along: a new connection at once, no outage.
        assert store.outage.count == 0 and store.outage.up_now
        [third] = await store.append([recorded(3, book)])
        assert third.sequence == 3
    assert [(a, s) for a, s, _ in fill_events(postgres_url)] == [
        ("AAPL", 1),
        ("AAPL", 2),
        ("AAPL", 3),
    ]


async def test_a_commit_that_landed_before_its_answer_was_lost_is_not_written_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = SymbolBook(Symbol("AAPL"))
    real = postgres_writer.write_events
    cut: list[int] = []

    def commit_then_lose_the_answer(
        db: psycopg.Connection[Any], epoch: int, entries: Sequence[Any], *args: Any
    ) -> Any:
        result = real(db, epoch, entries, *args)  # committed on the server
        if not cut:
            cut.append(db.info.backend_pid)
            terminate(postgres_url, db.info.backend_pid)
            db.execute("SELECT 1")  # the dropped connection: as if the COMMIT's answer never came
        return result

    async with PostgresStore(postgres_url) as store:
        await store.append([recorded(1, book)])
        monkeypatch.setattr(postgres_writer, "write_events", commit_then_lose_the_answer)
        second, third = recorded(2, book), recorded(3, book)
        stored = await store.append([second, third])
        assert cut, "the fault was not injected"
        assert [(e.aggregate_id, e.sequence) for e in stored] == [("AAPL", 2), ("AAPL", 3)]
        assert [e.event for e in stored] == [second.event, third.event]
        [fourth] = await store.append([recorded(4, book)])
        assert fourth.sequence == 4
    rows = fill_events(postgres_url)
    assert [(a, s) for a, s, _ in rows] == [("AAPL", n) for n in (1, 2, 3, 4)]
    assert len({p for _, _, p in rows}) == 4


async def test_reads_wait_for_a_new_connection(postgres_url: str) -> None:
    book = SymbolBook(Symbol("AAPL"))
    async with PostgresStore(postgres_url) as store:
        await store.append([recorded(1, book)])
        terminate(postgres_url, store.db.info.backend_pid)
        assert [p.symbol.ticker for p in await store.positions()] == ["AAPL"]
        assert store.outage.up_now and store.outage.count == 0


async def test_a_store_without_the_lease_reconnects_once_and_never_waits(
    postgres_url: str,
) -> None:
    async with PostgresStore(postgres_url):
        pass
    async with PostgresStore(postgres_url, read_only=True) as reader:
        terminate(postgres_url, reader.db.info.backend_pid)
        assert await reader.positions() == []  # the server is there: a new connection
        base, _, database = postgres_url.rpartition("/")
        with psycopg.connect(base + "/postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                admin.execute("SELECT pg_terminate_backend(%s)", (reader.db.info.backend_pid,))
                with pytest.raises(StoreError, match="cannot be opened"):
                    await reader.positions()  # at once: an operator's command does not hang
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        assert reader.outage.count == 0


def terminate_all(url: str) -> None:
    """End every session of the store's database but this one (a restart, minus the wait)."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


async def test_a_lease_still_ours_after_the_outage_carries_on(postgres_url: str) -> None:
    book = SymbolBook(Symbol("AAPL"))
    async with PostgresStore(postgres_url) as store:
        await store.append([recorded(1, book)])
        terminate_all(postgres_url)
        [stored] = await store.append([recorded(2, book)])
        assert stored.sequence == 2
        # The lease's connection finds out it was dropped on its next use (the
        # engine then waits and asks again); the one after is on a new connection.
        with contextlib.suppress(StoreUnavailableError):
            await store.verify_lease()
        await store.verify_lease()
        assert store.epoch == 1


async def test_a_lease_taken_during_the_outage_stops_the_old_holder(postgres_url: str) -> None:
    book = SymbolBook(Symbol("AAPL"))
    async with PostgresStore(postgres_url) as old:
        await old.append([recorded(1, book)])
        terminate_all(postgres_url)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("UPDATE lease SET expires_at = now() - interval '1 second'")
        async with PostgresStore(postgres_url) as new:
            assert new.epoch == 2
            with pytest.raises(LeaseLostError):
                await old.append([recorded(2, book)])

            async def verify() -> None:
                with contextlib.suppress(StoreUnavailableError):  # its dropped lease connection
                    await old.verify_lease()
                await old.verify_lease()

            with pytest.raises(LeaseLostError):
                await verify()
    assert [s for _, s, _ in fill_events(postgres_url)] == [1]


async def test_the_lease_holder_waits_while_the_database_refuses_and_carries_on(
    postgres_url: str,
) -> None:
    book = SymbolBook(Symbol("AAPL"))
    base, _, database = postgres_url.rpartition("/")
    async with PostgresStore(postgres_url) as store:
        await store.append([recorded(1, book)])
        with psycopg.connect(base + "/postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (database,),
                )
                pending = asyncio.ensure_future(store.append([recorded(2, book)]))
                for _ in range(500):
                    if store.outage.detail is not None:
                        break
                    await asyncio.sleep(0.01)
                assert store.outage.detail is not None  # what /health's store check reports
                assert "not currently accepting connections" in store.outage.detail
                assert not pending.done()  # the commit waits, it does not fail
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        [stored] = await asyncio.wait_for(pending, 30)
        assert stored.sequence == 2
        assert store.outage.up_now and store.outage.count == 1
    assert [s for _, s, _ in fill_events(postgres_url)] == [1, 2]


async def test_the_reporter_beside_the_bot_carries_on_after_its_connection_dropped(
    postgres_url: str,
) -> None:
    book = SymbolBook(Symbol("AAPL"))
    async with PostgresStore(postgres_url) as bot:
        await bot.append([recorded(1, book)])
        async with PostgresStore(postgres_url, lease=False) as own:
            reporter = PnlReporter.on(own)
            assert await reporter.catch_up() == 1
            terminate(postgres_url, own.db.info.backend_pid)
            await bot.append([recorded(2, book)])
            assert await reporter.catch_up() == 1  # its reads and its tables' writes
            assert len(await reporter.rows()) == 2
            # After a failed round the loop reloads its book: from its own tables first.
            terminate(postgres_url, own.db.info.backend_pid)
            reporter.book = None
            await bot.append([recorded(3, book)])
            assert await reporter.catch_up() == 1
            assert len(await reporter.rows()) == 3

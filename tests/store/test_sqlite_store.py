"""The event store on both backends: transactions, migrations, rebuilds.

Tests taking ``open_store`` run on SQLite and PostgreSQL; the ones marked
``sqlite`` are about SQLite's own files, migrations, pragmas and plans.
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from support.events import hedge_closed
from support.fills import fill, tx
from support.stores import OpenStore, Store
from support.views import dump

from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.events import FillRecorded, HedgeIntended, position_event
from st0x_liquidity.domain.fills import TradeId
from st0x_liquidity.domain.orders import OrderRules
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.errors import ConfigError, StoreError
from st0x_liquidity.store.schema import LATEST_VERSION, MIGRATIONS
from st0x_liquidity.store.sqlite import SqliteStore
from st0x_liquidity.store.sqlite_writer import split_sql as _split_sql


async def populate(store: Store) -> SymbolBook:
    book = SymbolBook(Symbol("AAPL"))
    events = []
    for n, (direction, amount) in enumerate([("BUY", "0.7"), ("SELL", "0.2"), ("BUY", "1.9")], 1):
        f = fill(n, "tAAPL", direction, amount, "101.5")
        events.append(
            position_event(
                f.symbol, FillRecorded(f, book.apply_fill(f)), source="t", cursor={"n": n}
            )
        )
    decision = book.decide(OrderRules.whole_shares())
    assert decision is not None
    reserved = book.reserve(decision, "h-1")
    events.append(
        position_event(
            book.symbol,
            HedgeIntended("h-1", decision.side, decision.quantity, Decimal("101.5"), reserved),
        )
    )
    await store.append(events)
    s = book.finish("h-1", Decimal("1.25"))
    await store.append(
        [hedge_closed(book, "h-1", decision.side, Decimal("1.25"), Decimal("102"), s)]
    )
    return book


async def test_views_match_the_book_and_rebuild_identically(open_store: OpenStore) -> None:
    async with open_store() as store:
        book = await populate(store)
        [position] = await store.positions()
        assert position.net == book.net == Decimal("1.15")
        assert position.open_quantity == book.open_net
        assert await store.cursor("t") == {"n": 3}
        before = await dump(store)
        assert await store.rebuild_views() == 5
        assert await dump(store) == before


async def test_events_are_append_only(open_store: OpenStore) -> None:
    async with open_store() as store:
        await populate(store)
        errors = (sqlite3.IntegrityError, psycopg.errors.IntegrityConstraintViolation)
        with pytest.raises(errors, match="append-only"):
            await store.fetch("DELETE FROM events")
        with pytest.raises(errors, match="append-only"):
            await store.fetch("UPDATE events SET payload = '{}'")
        assert len(await store.events()) == 5


async def test_a_fill_cannot_be_recorded_twice_even_by_a_buggy_caller(
    open_store: OpenStore,
) -> None:
    async with open_store() as store:
        f = fill(1, "tAAPL", "BUY", "1")
        await store.append([position_event(f.symbol, FillRecorded(f))])
        with pytest.raises(StoreError):
            await store.append([position_event(f.symbol, FillRecorded(f))])
        [position] = await store.positions()
        assert position.fills == 1, "the failed transaction left nothing behind"
        assert await store.known_trade_ids([f.trade_id, TradeId(tx(2), 0)]) == {f.trade_id}


@pytest.mark.sqlite
async def test_old_database_opens_in_new_version(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    version, description, sql = MIGRATIONS[0]
    for statement in _split_sql(sql):
        db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('database_id', 'abc123')")
    db.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')", (version, description))
    db.commit()
    db.close()
    async with SqliteStore(path) as store:
        assert await store.schema_version() == LATEST_VERSION
        assert store.database_id == "abc123"
        book = await populate(store)
        await store.put_blob("schwab", "tokens", b"\x00secret")
        assert await store.get_blob("schwab", "tokens") == b"\x00secret"
        # Schema 8 dropped the per-symbol index: start-up reads the open lots
        # by a scan, and still gets the book's lots, oldest first.
        indexes = await store.fetch("SELECT name FROM sqlite_master WHERE type = 'index'")
        assert ("onchain_trades_symbol",) not in indexes
        [snapshot] = await store.books()
        assert [(lot.trade_id, lot.open_quantity) for lot in snapshot.lots] == [
            (lot.trade_id, lot.open) for lot in book.lots
        ]
        assert snapshot.lots


@pytest.mark.sqlite
async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with SqliteStore(path):
        pass
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'later')")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this program"):
        await SqliteStore(path).open()


@pytest.mark.sqlite
async def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable st0x database"):
        await SqliteStore(path).open()


@pytest.mark.sqlite
async def test_two_processes_opening_a_new_database_at_once(tmp_path: Path) -> None:
    """The bot and the reporter may start together; neither may fail on migrations.

    Each store is its own connection on its own thread, so they race for the
    file's locks as processes do. Switching a new file to WAL used to fail
    with "database is locked" in about one race in seven, hence the rounds.
    """
    import asyncio

    for round_ in range(12):
        path = tmp_path / f"fresh-{round_}.db"
        # One engine (the lease holder) and five others (reporter, CLI, …).
        stores = [SqliteStore(path, lease=i == 0) for i in range(6)]
        results = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
        try:
            assert [r for r in results if r is not None] == []
            assert len({s.database_id for s in stores}) == 1
            for s in stores:
                assert await s.schema_version() == LATEST_VERSION
        finally:
            for s in stores:
                await s.close()


async def test_concurrent_first_appends_to_new_streams_all_commit_in_order(
    open_store: OpenStore,
) -> None:
    """Streams never seen are looked up while later appends keep arriving."""
    async with open_store() as store:
        symbols = ["AAPL", "MSFT", "TSLA", "NVDA", "SPY"]
        futures = []
        for n in range(40):
            f = fill(n + 1, symbols[n % 5], "BUY", "1")
            futures.append(store.submit([position_event(f.symbol, FillRecorded(f))]))
            await asyncio.sleep(0)  # the committer is reading a sequence meanwhile
        results = await asyncio.gather(*futures)
        assert [len(r) for r in results] == [1] * 40
        rows = [(e.aggregate_id, e.sequence) for _, e in await store.events()]
        for symbol in symbols:
            assert [s for a, s in rows if a == symbol] == list(range(1, 9))
        assert sum(p.fills for p in await store.positions()) == 40


async def test_an_event_that_cannot_be_encoded_fails_its_caller_only(
    open_store: OpenStore,
) -> None:
    async with open_store() as store:
        good = fill(1, "tAAPL", "BUY", "1")
        await store.append([position_event(good.symbol, FillRecorded(good))])
        bad = fill(2, "tAAPL", "BUY", "1")
        second = fill(3, "tAAPL", "SELL", "1")
        with pytest.raises(StoreError, match="cannot encode"):
            await store.append(
                [
                    position_event(second.symbol, FillRecorded(second)),
                    position_event(bad.symbol, FillRecorded(bad), cursor={"x": object()}),
                ]
            )
        await store.append([position_event(bad.symbol, FillRecorded(bad))])
        positions = [(p, e.sequence) for p, e in await store.events()]
        assert positions == [(1, 1), (2, 2)], "nothing of the failed append, no gap"
        assert {t for (t,) in await store.fetch("SELECT tx_hash FROM onchain_trades")} == {
            tx(1),
            tx(2),
        }


@pytest.mark.sqlite
@pytest.mark.parametrize(("setting", "pragma"), [(None, 2), ("FULL", 2), ("NORMAL", 1)])
async def test_synchronous_is_full_unless_configured_normal(
    tmp_path: Path, setting: str | None, pragma: int
) -> None:
    from support.harness import make_config

    from st0x_liquidity.app import open_store

    engine = {} if setting is None else {"synchronous": setting}
    store = open_store(make_config(tmp_path, engine=engine), lease=True)
    async with store:
        f = fill(1, "tAAPL", "BUY", "1")
        await store.append([position_event(f.symbol, FillRecorded(f))])
        writer = store._writer
        assert writer is not None
        assert writer.execute("PRAGMA synchronous").fetchone() == (pragma,)


def test_an_unknown_synchronous_mode_is_a_config_error(tmp_path: Path) -> None:
    from support.harness import make_config

    with pytest.raises(ConfigError, match="synchronous"):
        make_config(tmp_path, engine={"synchronous": "OFF"})


@pytest.mark.sqlite
async def test_corrections_are_found_through_the_partial_index(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "a.db") as store:
        await populate(store)
        plan = await store.fetch(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM onchain_trades c WHERE c.corrects = ?",
            ("x",),
        )
        assert any("onchain_trades_corrects" in str(row[-1]) for row in plan), plan
        [(entries,)] = await store.fetch(
            "SELECT COUNT(*) FROM onchain_trades INDEXED BY onchain_trades_corrects "
            "WHERE corrects IS NOT NULL"
        )
        assert entries == 0, "plain fills take no entry in the corrections index"


async def reference(
    store: Store,
) -> tuple[dict[str, list[tuple[object, ...]]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """``populate``'s views, its fill_links and its event rows, as this version writes them."""
    await populate(store)
    links = await store.fetch("SELECT * FROM fill_links ORDER BY 1, 2, 3, 4")
    events = await store.fetch(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, "
        "metadata, recorded_at FROM events ORDER BY rowid"
    )
    return await dump(store), links, events


def old_database(path: Path, version: int, events: list[tuple[object, ...]]) -> sqlite3.Connection:
    """A database as ``version`` left it, holding ``events``; the caller fills its views."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for number, description, sql in MIGRATIONS:
        if number > version:
            break
        for statement in _split_sql(sql):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')", (number, description))
    db.execute("INSERT INTO meta VALUES ('database_id', ?)", (f"v{version}db",))
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
    return db


@pytest.mark.sqlite
async def test_a_version_6_database_gets_its_views_rebuilt_in_the_new_shape(tmp_path: Path) -> None:
    # Reference: the same events written by this version.
    async with SqliteStore(tmp_path / "new.db") as store:
        expected, links, events = await reference(store)
    # A database written by version 6: its events, and fill_links as a table.
    path = tmp_path / "v6.db"
    db = old_database(path, 6, events)
    db.execute("INSERT INTO fill_links VALUES (?, 0, 'netted', 'stale', '9')", (tx(1),))
    db.commit()
    db.close()
    async with SqliteStore(path) as store:
        assert await store.schema_version() == LATEST_VERSION
        assert await dump(store) == expected
        # Both sides of every netting, as fill_links showed them before.
        assert await store.fetch("SELECT * FROM fill_links ORDER BY 1, 2, 3, 4") == links
        netted = [row for row in links if row[2] == "netted"]
        assert netted and len(netted) % 2 == 0
        assert await store.fetch("SELECT value FROM meta WHERE key = 'views_stale'") == []


@pytest.mark.sqlite
async def test_a_version_8_database_keeps_its_links_under_integer_trade_ids(
    tmp_path: Path,
) -> None:
    # Reference: the same events written by this version.
    async with SqliteStore(tmp_path / "new.db") as store:
        expected, links, events = await reference(store)
        # The rows as version 8 stored them: fills named by their text ids.
        old_links = await store.fetch(
            "SELECT t.tx_hash, t.log_index, a.kind, CASE WHEN a.kind = 'netted' "
            "THEN c.tx_hash || ':' || c.log_index ELSE a.counterpart END, a.quantity "
            "FROM fill_allocations a JOIN onchain_trades t ON t.id = a.trade "
            "LEFT JOIN onchain_trades c ON a.kind = 'netted' AND c.id = a.counterpart"
        )
        trades = await store.fetch(
            "SELECT tx_hash, log_index, symbol, direction, amount, price, block_number, "
            "block_timestamp, arrival, open_quantity, source, recorded_at, corrects, correction "
            "FROM onchain_trades ORDER BY id"
        )
        others = {
            table: await store.fetch(f"SELECT * FROM {table}")
            for table in ("positions", "source_cursors", "skipped_inputs")
        }
        others["hedge_orders"] = await store.fetch(  # the columns version 8 had
            "SELECT client_order_id, symbol, side, quantity, reference_price, state, "
            "broker_order_id, filled_quantity, average_price, reason, created_at, updated_at "
            "FROM hedge_orders"
        )
    assert any(row[2] == "netted" for row in old_links)
    assert {row[2] for row in old_links} >= {"netted", "hedged"}
    path = tmp_path / "v8.db"
    db = old_database(path, 8, events)
    db.executemany(
        "INSERT INTO onchain_trades (tx_hash, log_index, symbol, direction, amount, price, "
        "block_number, block_timestamp, arrival, open_quantity, source, recorded_at, corrects, "
        "correction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        trades,
    )
    db.executemany("INSERT INTO fill_allocations VALUES (?, ?, ?, ?, ?)", old_links)
    for table, rows in others.items():
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    db.commit()
    db.close()
    async with SqliteStore(path) as store:
        assert await store.schema_version() == LATEST_VERSION
        # Migrated in place, not rebuilt from the events.
        assert await store.fetch("SELECT value FROM meta WHERE key = 'views_stale'") == []
        assert await dump(store) == expected
        assert await store.fetch("SELECT * FROM fill_links ORDER BY 1, 2, 3, 4") == links
        # The ids are declared (an alias of the rowid): VACUUM cannot renumber them.
        await store.db.execute("VACUUM")
        assert await dump(store) == expected
        assert await store.rebuild_views() == len(events)
        assert await dump(store) == expected


async def test_a_failed_commit_fails_what_was_queued_behind_it_and_nothing_else(
    open_store: OpenStore,
) -> None:
    # Transactions are sent to the writer ahead of the answer to the one
    # before. Whatever the timing, a caller told "committed" finds its events
    # in the log, one told "failed" does not, and the log has no gap.
    async with open_store() as store:
        first = fill(1, "tAAPL", "BUY", "1")
        await store.append([position_event(first.symbol, FillRecorded(first))])
        futures = [store.submit([position_event(first.symbol, FillRecorded(first))])]
        for n in range(2, 14):
            await asyncio.sleep(0.001 * (n % 3))  # separate transactions, some queued
            f = fill(n, "tAAPL", "BUY", "1")
            futures.append(store.submit([position_event(f.symbol, FillRecorded(f))]))
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(outcomes[0], StoreError)
        committed = [o for o in outcomes[1:] if not isinstance(o, BaseException)]
        assert all(isinstance(o, StoreError) for o in outcomes[1:] if isinstance(o, BaseException))
        last = fill(20, "tAAPL", "SELL", "1")
        await store.append([position_event(last.symbol, FillRecorded(last))])
        sequences = [
            r[0] for r in await store.fetch("SELECT sequence FROM events ORDER BY sequence")
        ]
        assert sequences == list(range(1, len(committed) + 3))
        trades = await store.fetch("SELECT COUNT(*) FROM onchain_trades")
        assert trades[0][0] == len(committed) + 2

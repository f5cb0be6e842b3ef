"""The store's writer process: its failures are loud, signals do not stop it, it leaves nothing behind."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.fills import fill

from st0x_liquidity.domain.accumulator import SymbolBook
from st0x_liquidity.domain.events import FillRecorded, NewEvent, position_event
from st0x_liquidity.domain.symbols import Symbol
from st0x_liquidity.errors import StoreError
from st0x_liquidity.store import write_worker
from st0x_liquidity.store.sqlite import SqliteStore
from st0x_liquidity.store.writer_process import WriterProcess


def _events(start: int, count: int) -> list[NewEvent]:
    book = SymbolBook(Symbol("AAPL"))
    out = []
    for n in range(start, start + count):
        f = fill(n, "tAAPL", "BUY" if n % 2 else "SELL", "1.5")
        out.append(position_event(f.symbol, FillRecorded(f, book.apply_fill(f))))
    return out


def _pid(store: SqliteStore) -> int:
    writer = store._writer
    assert writer is not None and writer._proc is not None
    return writer._proc.pid


async def test_a_killed_writer_fails_the_next_commit_with_a_clear_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.append(_events(1, 3))
        os.kill(_pid(store), signal.SIGKILL)
        with pytest.raises(StoreError, match="writer process ended unexpectedly"):
            await asyncio.wait_for(store.append(_events(4, 3)), 10)
        # What was committed before stays readable.
        assert (await store.fetch("SELECT COUNT(*) FROM onchain_trades"))[0][0] == 3
    finally:
        await store.close()


async def test_sigint_and_sigterm_do_not_stop_the_writer(tmp_path: Path) -> None:
    # A terminal's Ctrl-C reaches the whole process group; the engine decides
    # when writing stops and still commits on its way out.
    async with SqliteStore(tmp_path / "s.db") as store:
        pid = _pid(store)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        await asyncio.sleep(0.2)
        await store.append(_events(1, 2))
        assert (await store.fetch("SELECT COUNT(*) FROM events"))[0][0] == 2


async def test_closing_the_store_ends_the_writer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    pid = _pid(store)
    await store.append(_events(1, 1))
    await store.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_the_wal_is_checkpointed_while_writing(tmp_path: Path) -> None:
    # The writer's own connection never checkpoints (that stalled commits);
    # its checkpoint thread copies the WAL into the database between commits.
    path = tmp_path / "s.db"
    async with SqliteStore(path) as store:
        before = path.stat().st_size
        for start in range(1, 2001, 200):
            await store.append(_events(start, 200))
        for _ in range(100):
            if path.stat().st_size > before + 200_000:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size > before + 200_000


async def test_the_writer_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from st0x_liquidity.store.sqlite import SqliteStore\n"
        "async def main():\n"
        f"    store = SqliteStore({str(tmp_path / 's.db')!r})\n"
        "    await store.open()\n"
        "    print(store._writer._proc.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    assert parent.stdout is not None
    line = await asyncio.wait_for(parent.stdout.readline(), 30)
    writer_pid = int(line)
    parent.kill()
    await parent.wait()
    for _ in range(100):
        try:
            os.kill(writer_pid, 0)
        except ProcessLookupError:
            return
        # A zombie is gone too: it only waits to be reaped by init.
        stat = Path(f"/proc/{writer_pid}/stat").read_text()  # noqa: ASYNC240
        if stat.split(") ")[1].startswith("Z"):
            return
        await asyncio.sleep(0.05)
    pytest.fail("the writer process outlived its parent")


def _event_row(sequence: int) -> tuple[object, ...]:
    return (
        "Position",
        "AAPL",
        sequence,
        "CursorCheckpointed",
        1,
        "{}",
        "{}",
        "2026-01-02T15:00:00",
    )


async def _schema(path: Path) -> None:
    async with SqliteStore(path):
        pass


async def test_a_transaction_queued_behind_a_failed_one_is_refused_unwritten(
    tmp_path: Path,
) -> None:
    # The store sends a transaction ahead while the writer runs the one before
    # it, and the later one counts on the earlier one's sequences: when the
    # earlier one fails, the queued one must not be written. A new epoch (the
    # store's, once it has failed them) writes again.
    path = tmp_path / "s.db"
    await _schema(path)
    requests = io.BytesIO()
    for op, args in [
        ("transaction", ([("events", [_event_row(1)])], 0)),
        ("transaction", ([("events", [_event_row(2), _event_row(1)])], 0)),  # duplicate key
        ("transaction", ([("events", [_event_row(3)])], 0)),  # sent ahead of the failure
        ("query", ("SELECT 1", ())),
        ("transaction", ([("events", [_event_row(2)])], 1)),
        ("close", ()),
    ]:
        write_worker.write_frame(requests, (op, args))
    requests.seek(0)
    replies = io.BytesIO()
    db = write_worker.connect(str(path), "FULL")
    try:
        write_worker.serve(db, requests, replies)
    finally:
        db.close()
    replies.seek(0)
    statuses = [write_worker.read_frame(replies)[0] for _ in range(6)]
    assert statuses == ["ok", "sqlite", "skipped", "ok", "ok", "ok"]
    with sqlite3.connect(path) as check:
        rows = check.execute("SELECT sequence FROM events ORDER BY sequence").fetchall()
    assert rows == [(1,), (2,)]


async def _started_writer(tmp_path: Path) -> WriterProcess:
    path = tmp_path / "s.db"
    await _schema(path)
    writer = WriterProcess(path, "FULL")
    writer.start()
    return writer


async def test_replies_to_requests_sent_ahead_come_back_in_order(tmp_path: Path) -> None:
    writer = await _started_writer(tmp_path)
    try:
        first = writer.send("transaction", [("events", [_event_row(1), _event_row(1)])], 0)
        second = writer.send("transaction", [("events", [_event_row(2)])], 0)
        third = writer.send("query", "SELECT COUNT(*) FROM events", ())
        with pytest.raises(sqlite3.IntegrityError):
            first.result(10)
        with pytest.raises(StoreError, match="not written: an earlier transaction failed"):
            second.result(10)
        assert third.result(10) == [(0,)]
        writer.call("transaction", [("events", [_event_row(1)])], 1)
        assert writer.call("query", "SELECT sequence FROM events", ()) == [(1,)]
    finally:
        writer.close()


async def test_requests_waiting_when_the_writer_dies_fail_clearly(tmp_path: Path) -> None:
    writer = await _started_writer(tmp_path)
    try:
        assert writer._proc is not None
        os.kill(writer._proc.pid, signal.SIGKILL)
        # Whether the reader thread has seen the end yet or not: a clear error,
        # from send itself or from the request's future.
        for _ in range(2):
            with pytest.raises(StoreError, match="writer process ended unexpectedly"):
                writer.send("query", "SELECT 1", ()).result(10)
    finally:
        writer.kill()


_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple),
    max_leaves=20,
)


@settings(max_examples=200)
@given(_PLAIN)
def test_frames_carry_plain_data_exactly(value: object) -> None:
    stream = io.BytesIO()
    write_worker.write_frame(stream, value)
    assert stream.getvalue()[write_worker.HEADER.size : write_worker.HEADER.size + 1] == b"M"
    stream.seek(0)
    assert write_worker.read_frame(stream) == value


class _Text(str):
    """Not plain data to marshal: a frame carrying it falls back to pickle."""


def test_frames_carry_other_values_through_pickle() -> None:
    stream = io.BytesIO()
    write_worker.write_frame(stream, ("ok", [_Text("x")]))
    stream.seek(0)
    value = write_worker.read_frame(stream)
    assert value == ("ok", ["x"]) and type(value[1][0]) is _Text


def test_a_frame_of_another_protocol_is_refused() -> None:
    stream = io.BytesIO(write_worker.HEADER.pack(2) + b"X!")
    with pytest.raises(ValueError, match="not a frame"):
        write_worker.read_frame(stream)

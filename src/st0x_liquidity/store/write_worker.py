"""The store's writer process: runs named multi-row statements, one transaction a call.

Why a process and not a thread: the writer spends its time in SQLite with the
GIL released, but needs it back after every statement and for every call
SQLite makes into Python (``dec_add``). While the event loop thread runs
Python, each of those waits up to the interpreter's switch interval (5 ms):
measured, a writer thread spent more than half of its wall time waiting for
the GIL, and ingestion ran at a third of what the two halves allow apart.
In its own process the writer never waits for the parent's GIL.

It is a plain script using the standard library only (it starts in ~40 ms
instead of the ~330 ms the package's imports take) and knows nothing of
events: the parent sends ``(op, args)`` frames on stdin and reads one reply
per frame on stdout. ``transaction`` writes a list of ``(statement name,
rows)`` atomically; ``query`` runs one read; ``close`` ends it. It ignores
SIGINT and SIGTERM (a terminal's Ctrl-C reaches the whole process group; the
parent decides when writing stops) and exits when its stdin closes, which is
also what happens when the parent dies.

Statements take a multi-row ``VALUES`` list padded to a power of two with rows
whose first column is NULL (the others 0: a NULL parameter costs sqlite3 an
adapter lookup, an int does not), so a handful of statement texts serve every
batch size from the statement cache; each ignores rows with a NULL first
column. At most 256 rows a statement: preparing a statement costs several
times running it and grows with its text (a 2,048-row insert: 25.6 ms the
first time, 2.5 ms once prepared; once per size per writer), while per row,
256-row statements run as fast as longer ones.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import marshal
import pickle
import signal
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import IO, Any

if __package__:
    from ..domain.numbers import EXACT, fmt
else:  # run as the writer script: the same module, loaded without the package
    _spec = importlib.util.spec_from_file_location(
        "_st0x_numbers", Path(__file__).resolve().parent.parent / "domain" / "numbers.py"
    )
    assert _spec is not None and _spec.loader is not None
    _numbers = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_numbers)
    EXACT, fmt = _numbers.EXACT, _numbers.fmt

Row = Sequence[Any]
"""One row of values: a tuple, or a list the projection filled in place."""
HEADER = struct.Struct(">Q")
_MARSHAL, _PICKLE = b"M", b"P"
"""A frame's first byte after the header: how its body is encoded."""
BUSY_TIMEOUT_MS = 10_000
_MAX_CHUNK = 256
"""Rows per statement at most (and fewer if SQLite allows fewer parameters)."""
GC_THRESHOLD = 200_000
"""Allocations between the writer's cyclic collections (see :func:`main`)."""


def dec_add(a: str | None, b: str | None) -> str:
    """Exact sum of two decimal texts, in the store's one spelling."""
    return fmt(EXACT.add(Decimal(a or "0"), Decimal(b or "0")))


class RowsStatement:
    """SQL with a ``{rows}`` slot for a ``VALUES`` list of ``columns``-wide rows."""

    def __init__(self, template: str, columns: int) -> None:
        self.template = template
        self.columns = columns
        self.padding: list[Any] = [None] + [0] * (columns - 1)
        """One padding row's values: a NULL first column marks it."""
        self._texts: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        text = self._texts.get(rows)
        if text is None:
            one = "(" + ",".join("?" * self.columns) + ")"
            text = self._texts[rows] = self.template.format(rows=",".join([one] * rows))
        return text


def _insert(table_and_columns: str, columns: int, conflict: str = "") -> RowsStatement:
    # WHERE drops the padding and lets SQLite parse ON CONFLICT after a SELECT.
    return RowsStatement(
        f"INSERT INTO {table_and_columns} SELECT * FROM (VALUES {{rows}}) "
        f"WHERE column1 IS NOT NULL{conflict}",
        columns,
    )


_TRADE_ID = (
    "(SELECT t.id FROM onchain_trades t WHERE t.tx_hash = v.column1 AND t.log_index = v.column2)"
)


def _is_trade(table: str, text: str) -> str:
    """SQL true when ``table``'s row is the trade whose id reads ``0x…:N`` in ``text``.

    A trade id's tx hash is always 66 characters (0x and 64 hex digits); the
    comparisons take the (tx_hash, log_index) index.
    """
    return (
        f"{table}.tx_hash = substr({text}, 1, 66) "
        f"AND {table}.log_index = CAST(substr({text}, 68) AS INTEGER)"
    )


_COUNTERPART = (
    "CASE WHEN v.column3 = 'netted' THEN (SELECT c.id FROM onchain_trades c "
    f"WHERE {_is_trade('c', 'v.column4')}) ELSE v.column4 END"
)

STATEMENTS: dict[str, RowsStatement] = {
    "events": _insert("events", 8),
    "trades": _insert(
        "onchain_trades (tx_hash, log_index, symbol, direction, amount, price, block_number, "
        "block_timestamp, arrival, open_quantity, source, recorded_at, corrects, correction)",
        14,
    ),
    "hedge_updates": RowsStatement(
        "UPDATE hedge_orders SET state = v.column2, "
        "broker_order_id = COALESCE(v.column3, broker_order_id), "
        "filled_quantity = COALESCE(v.column4, filled_quantity), "
        "average_price = COALESCE(v.column5, average_price), "
        "reason = COALESCE(v.column6, reason), updated_at = v.column7 "
        "FROM (VALUES {rows}) AS v WHERE hedge_orders.client_order_id = v.column1",
        7,
    ),
    "hedge_inserts": _insert(
        "hedge_orders (client_order_id, symbol, side, quantity, reference_price, state, "
        "broker_order_id, filled_quantity, average_price, reason, created_at, updated_at)",
        12,
        " ON CONFLICT (client_order_id) DO UPDATE SET state = excluded.state, "
        "broker_order_id = COALESCE(excluded.broker_order_id, broker_order_id), "
        "filled_quantity = excluded.filled_quantity, "
        "average_price = COALESCE(excluded.average_price, average_price), "
        "reason = COALESCE(excluded.reason, reason), updated_at = excluded.updated_at",
    ),
    "open_deltas": RowsStatement(
        # (trade id text, delta): the projection keys trades by their text id.
        "UPDATE onchain_trades SET open_quantity = dec_add(open_quantity, v.column2) "
        "FROM (VALUES {rows}) AS v "
        f"WHERE {_is_trade('onchain_trades', 'v.column1')}",
        2,
    ),
    # Links arrive as (tx_hash, log_index, kind, counterpart, quantity), a
    # netting's counterpart as the older fill's ``0x…:N``; the table keeps both
    # fills as onchain_trades ids (looked up here by primary key: the engine
    # need not know them). A fill that is not there leaves a NULL and fails the
    # transaction on NOT NULL.
    "links": RowsStatement(
        "INSERT INTO fill_allocations (trade, kind, counterpart, quantity) "
        f"SELECT {_TRADE_ID}, v.column3, {_COUNTERPART}, v.column5 "
        "FROM (VALUES {rows}) AS v WHERE v.column1 IS NOT NULL "
        "ON CONFLICT (trade, kind, counterpart) "
        "DO UPDATE SET quantity = dec_add(quantity, excluded.quantity)",
        5,
    ),
    "zero_links": RowsStatement(
        # IN over a SELECT (not over the bare VALUES) lets SQLite 3.40 search
        # the primary key instead of scanning the table.
        "DELETE FROM fill_allocations WHERE (trade, kind, counterpart) IN "
        f"(SELECT {_TRADE_ID}, v.column3, {_COUNTERPART} FROM (VALUES {{rows}}) AS v) "
        "AND quantity = '0'",
        4,
    ),
    "positions": _insert(
        "positions (symbol, net, open_quantity, last_price, hedges_placed, pending_hedge, "
        "fills, updated_at)",
        8,
        " ON CONFLICT (symbol) DO UPDATE SET net = dec_add(net, excluded.net), "
        "open_quantity = dec_add(open_quantity, excluded.open_quantity), "
        "last_price = COALESCE(excluded.last_price, last_price), "
        "hedges_placed = hedges_placed + excluded.hedges_placed, "
        "fills = fills + excluded.fills, updated_at = excluded.updated_at",
    ),
    "pending_hedges": RowsStatement(
        "UPDATE positions SET pending_hedge = v.column2 FROM (VALUES {rows}) AS v "
        "WHERE positions.symbol = v.column1",
        2,
    ),
    "cursors": _insert(
        "source_cursors (source, cursor, updated_at)",
        3,
        " ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, "
        "updated_at = excluded.updated_at",
    ),
    "skipped": _insert("skipped_inputs", 6),
}

Plan = Sequence[tuple[str, Sequence[Row]]]
"""What one transaction writes: statement names from :data:`STATEMENTS`, with rows."""


def _chunks(
    db: sqlite3.Connection, statement: RowsStatement, rows: Sequence[Row]
) -> Iterable[tuple[str, list[Any]]]:
    limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // statement.columns
    most = min(_MAX_CHUNK, 1 << (max(limit, 1).bit_length() - 1))
    for start in range(0, len(rows), most):
        chunk = rows[start : start + most]
        n = 1 << (len(chunk) - 1).bit_length()
        params = list(chain.from_iterable(chunk))
        if n > len(chunk):
            params.extend(statement.padding * (n - len(chunk)))
        yield statement.sql(n), params


def execute_plan(db: sqlite3.Connection, plan: Plan) -> None:
    """Run ``plan``'s statements in order (inside the caller's transaction)."""
    for name, rows in plan:
        if rows:
            statement = STATEMENTS[name]
            for sql, params in _chunks(db, statement, rows):
                db.execute(sql, params)


def transaction(db: sqlite3.Connection, plan: Plan) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        execute_plan(db, plan)
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # BEGIN itself may have failed
            db.execute("ROLLBACK")
        raise


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    """A writer connection: the store's pragmas and ``dec_add``."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    try:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        db.create_function("dec_add", 2, dec_add, deterministic=True)
    except BaseException:
        db.close()
        raise
    return db


# -- framing (used by both ends) ---------------------------------------------------


def write_frame(stream: IO[bytes], value: object) -> None:
    """Send ``value``: marshal for plain data (every transaction), pickle for anything else.

    Both ends run the same interpreter (the parent starts the writer with its own
    ``sys.executable``), so marshal's version-specific format is safe here, and it
    encodes a transaction's rows of str, int and None faster than pickle (2.3 vs
    3.7 µs per fill on the benchmark's frames), on the sending side, which shares
    the engine's GIL; decoding costs about the same.
    """
    kind = _MARSHAL
    try:
        body = marshal.dumps(value)  # type: ignore[arg-type]  # refused at run time
    except ValueError:  # an object marshal does not know (a subclass of str, say)
        kind, body = _PICKLE, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(body) + 1) + kind)
    stream.write(body)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's value; EOFError when the other end has gone."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    kind, data = body[:1], memoryview(body)[1:]
    if kind == _MARSHAL:
        return marshal.loads(data)
    if kind == _PICKLE:
        return pickle.loads(data)
    raise ValueError(f"not a frame of this protocol (kind {kind!r})")


# -- the process ---------------------------------------------------------------------


class Checkpointer:
    """Copies the WAL into the database on a thread of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL
    pages, so one commit in a hundred or so also writes and fsyncs the database
    file: that was the p99 of the hedge decision latency (3 ms instead of
    1.3 ms for a fill's transaction). Here the writer's connection never
    checkpoints; after commits this thread runs PASSIVE checkpoints on its own
    connection, which never block the writer.
    """

    PAUSE = 0.1
    """At most ten checkpoints a second: each covers every commit since the last."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._wanted = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="st0x-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wanted.set()

    def close(self) -> None:
        self._stop = True
        self._wanted.set()
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stop:
                return
            self._wanted.clear()
            with contextlib.suppress(sqlite3.Error):  # busy: the next one catches up
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            time.sleep(self.PAUSE)


def serve(
    db: sqlite3.Connection,
    requests: IO[bytes],
    replies: IO[bytes],
    after_commit: Callable[[], None] = lambda: None,
) -> None:
    # The parent sends a transaction ahead while the previous one runs, and the
    # later one counts on the earlier one's event sequences. When one fails,
    # every transaction already queued behind it (same epoch or older) is
    # refused unwritten; the parent starts a new epoch once it has failed them.
    failed_epoch = -1

    def write(plan: Plan, _epoch: int = 0) -> None:
        transaction(db, plan)
        after_commit()

    ops: dict[str, Callable[..., Any]] = {
        "transaction": write,
        "query": lambda sql, params: db.execute(sql, params).fetchall(),
    }
    while True:
        try:
            op, args = read_frame(requests)
        except EOFError:
            return
        if op == "close":
            write_frame(replies, ("ok", None))
            return
        epoch = args[1] if op == "transaction" and len(args) > 1 else None
        if epoch is not None and epoch <= failed_epoch:
            write_frame(replies, ("skipped", "Skipped", "an earlier transaction failed"))
            continue
        try:
            result = ops[op](*args)
        except sqlite3.Error as exc:
            if epoch is not None:
                failed_epoch = epoch
            write_frame(replies, ("sqlite", type(exc).__name__, str(exc)))
        except Exception as exc:  # reported to the parent, which fails the batch
            if epoch is not None:
                failed_epoch = epoch
            write_frame(replies, ("error", type(exc).__name__, str(exc)))
        else:
            write_frame(replies, ("ok", result))


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path, synchronous = argv
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    try:
        db = connect(path, synchronous)
        db.execute("PRAGMA wal_autocheckpoint=0")
        checkpointer = Checkpointer(path)
    except sqlite3.Error as exc:
        write_frame(replies, ("sqlite", type(exc).__name__, str(exc)))
        return 1
    write_frame(replies, ("ok", None))
    # Each transaction arrives as tens of thousands of lists and tuples, freed
    # by reference counting once written; at the default threshold (700) the
    # cyclic collector ran dozens of times a transaction and took ~6 % of the
    # writer's time. It still runs, for the rare cycle (an exception's
    # traceback), every GC_THRESHOLD allocations.
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD)
    try:
        serve(db, requests, replies, checkpointer.nudge)
    except BrokenPipeError:  # the parent went away mid-reply
        pass
    finally:
        checkpointer.close()
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

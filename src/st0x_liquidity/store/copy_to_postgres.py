"""Move an installation: copy a SQLite database's history into an empty PostgreSQL database.

What is copied is what cannot be derived: the event log (each event at its
log position, so everything that names a position — the P&L checkpoint,
rebalancing's ``core_position`` — still means the same event), the side
tables that hold history (circuit breaker, trading state requests, with their
ids, which ``TradingStateChanged`` events name; rebalancing's log; the P&L
reporter's tables; plugin blobs) and the database's identity (``meta``: its
``database_id`` is part of every ``client_order_id``). The dry-run broker's
ledger file, when given, goes into its tables. The views are not copied: the
destination rebuilds them from its events (:meth:`PostgresStore.rebuild_views`),
the same code that ``rebuild-views`` runs.

The destination must be empty: the schema, the rows and the check that it
was empty are one transaction, so a copy that fails leaves it empty again.
The source is read while its lease is held (no ``run`` writes it meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg

from ..errors import StoreError
from . import postgres_writer as writer
from .dry_run_ledger import LIMIT_COLUMNS
from .dry_run_ledger import POSTGRES_SCHEMA as LEDGER_SCHEMA
from .postgres import PostgresStore, redact
from .schema import VIEWS_STALE
from .side_db import explain
from .sqlite import SqliteStore

BATCH = 5000

EVENT_COLUMNS = (
    "aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, "
    "recorded_at"
)
_TABLES: tuple[tuple[str, str, str | None], ...] = (
    # (table, columns, identity column whose sequence continues after the copy)
    (
        "circuit_breaker_log",
        "id, at, action, reason, actor, remote",
        "id",
    ),
    (
        "trading_state_log",
        "id, at, symbol, state, reason, actor, remote",
        "id",
    ),
    (
        "rebalancing_events",
        "position, stream, sequence, event_type, payload, core_position, recorded_at",
        "position",
    ),
    ("plugin_blobs", "namespace, key, value, updated_at", None),
    (
        "metrics_pnl",
        "position, symbol, time, trade_time, venue, trade_id, direction, quantity, price, "
        "matched_quantity, realized_pnl, cumulative_pnl, net_position_after",
        None,
    ),
    ("metrics_pnl_lots", "symbol, seq, direction, quantity, price, opened_by", None),
    ("metrics_pnl_symbols", "symbol, cumulative_pnl, last_position", None),
    ("metrics_pnl_checkpoint", "id, position, updated_at", None),
)
_LEDGER: tuple[tuple[str, str, str], ...] = (
    (
        "orders",
        "dry_run_orders",
        "broker_order_id, client_order_id, symbol, side, quantity, price, outcome, "
        "filled_quantity, reason, placed_at, done_at",
    ),
    ("placements", "dry_run_placements", "client_order_id, attempted_at, result"),
)


@attrs.frozen
class CopyReport:
    events: int
    rows: dict[str, int]
    """Rows copied per side table (including the dry-run ledger's)."""
    views_rebuilt: int


class NotEmptyError(StoreError):
    """The destination already holds tables: nothing was copied."""


async def copy_to_postgres(source: Path, url: str, *, ledger: Path | None = None) -> CopyReport:
    """Copy ``source`` (and the dry-run ``ledger`` file, if it exists) into the empty
    PostgreSQL database at ``url``, then rebuild its views."""
    name = redact(url)
    # The lease: no `run` writes the file while it is read (and an old file is upgraded).
    async with SqliteStore(source, lease=True):
        try:
            events, rows = await asyncio.to_thread(_copy, source, url, name, ledger)
        except psycopg.Error as exc:
            raise StoreError(
                f"{name}: the copy failed and was rolled back: {explain(url, exc)}"
            ) from None
    try:
        async with PostgresStore(url) as store:
            rebuilt = await store.rebuild_views()
    except psycopg.Error as exc:
        raise StoreError(
            f"{name}: the events are copied but rebuilding the views failed "
            f"({explain(url, exc)}); run `rebuild-views` on it"
        ) from None
    if rebuilt != events:
        raise StoreError(f"{name}: {events} events copied but {rebuilt} replayed")
    return CopyReport(events, rows, rebuilt)


def _copy(source: Path, url: str, name: str, ledger: Path | None) -> tuple[int, dict[str, int]]:
    with (
        contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
        writer.connect(url) as dst,
        dst.transaction(),
    ):
        _refuse_non_empty(dst, name)
        writer.migrate(dst, name)  # nested: savepoints of this one transaction
        for key, value in src.execute("SELECT key, value FROM meta"):
            if key != VIEWS_STALE:
                dst.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
        events = _copy_rows(
            dst,
            _batches(src, f"SELECT rowid, {EVENT_COLUMNS} FROM events ORDER BY rowid"),
            "events",
            f"position, {EVENT_COLUMNS}",
        )
        rows: dict[str, int] = {}
        for table, columns, identity in _TABLES:
            rows[table] = _copy_rows(
                dst,
                _batches(src, f"SELECT {columns} FROM {table}"),
                table,
                columns,
                overriding=identity is not None,
            )
            if identity is not None:
                dst.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{identity}'), "
                    f"COALESCE(MAX({identity}), 0) + 1, false) FROM {table}"
                )
        if ledger is not None and ledger.exists():
            rows.update(_copy_ledger(dst, ledger))
        copied = dst.execute("SELECT COUNT(*) FROM events").fetchone()
        if copied is None or int(copied[0]) != events:
            raise StoreError(f"{name}: the events copied do not add up; rolled back")
    return events, rows


def _refuse_non_empty(dst: psycopg.Connection[Any], name: str) -> None:
    row = dst.execute(
        "SELECT (SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S')) + "
        "(SELECT COUNT(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema())"
    ).fetchone()
    if row is not None and int(row[0]):
        raise NotEmptyError(
            f"{name} is not empty ({int(row[0])} tables, views or functions); "
            "copy-to-postgres only fills an empty database"
        )


def _batches(src: sqlite3.Connection, sql: str) -> Iterator[list[tuple[Any, ...]]]:
    cur = src.execute(sql)
    while rows := cur.fetchmany(BATCH):
        yield rows


def _copy_rows(
    dst: psycopg.Connection[Any],
    batches: Iterator[Sequence[Sequence[Any]]],
    table: str,
    columns: str,
    *,
    overriding: bool = False,
) -> int:
    marks = ", ".join(["%s"] * len(columns.split(",")))
    override = " OVERRIDING SYSTEM VALUE" if overriding else ""
    sql = f"INSERT INTO {table} ({columns}){override} VALUES ({marks})"
    count = 0
    with dst.cursor() as cur:
        for rows in batches:
            cur.executemany(sql, rows)
            count += len(rows)
    return count


def _copy_ledger(dst: psycopg.Connection[Any], ledger: Path) -> dict[str, int]:
    """The dry-run broker's orders, into the tables it keeps on PostgreSQL."""
    for statement in LEDGER_SCHEMA:
        dst.execute(statement)
    counts: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as src:
        have = {str(r[1]) for r in src.execute("PRAGMA table_info(orders)")}
        for table, target, base in _LEDGER:
            # Files written before limit orders existed lack their columns (NULL there).
            extra = [c for c in LIMIT_COLUMNS if table == "orders" and c in have]
            columns = ", ".join([base, *extra])
            counts[target] = _copy_rows(
                dst, _batches(src, f"SELECT {columns} FROM {table}"), target, columns
            )
    return counts

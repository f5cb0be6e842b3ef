"""The PostgreSQL store's writer connection: sync psycopg, one transaction a call.

As :mod:`.sqlite_writer`: each function is one whole unit of work, run off
the event loop by :class:`~.postgres.PostgresStore`, one at a time, and
the view rows come from the same :func:`~.writes.append_entries` and
:func:`~.writes.apply_event`. Every engine transaction locks the lease row
(``SELECT … FOR KEY SHARE``) and compares the epoch before it writes anything.
That lock waits for a new holder taking the lease (``FOR UPDATE``) and holds
any new holder off until the transaction ends, but not the holder's own
renewals (a non-key ``UPDATE``): a long transaction (``rebuild-views``, a big
batch) must not stop the lease from being renewed.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.errors

from ..domain.events import StoredEvent
from ..errors import StoreError
from .base import stored_from_row
from .lease import LEASE_NAME, LeaseHolder, LeaseLostError, this_holder
from .postgres_schema import POSTGRES_MIGRATIONS
from .schema import LATEST_VERSION, VIEW_TABLES, VIEWS_STALE
from .writes import Encoded, Key, append_entries, apply_event

MIGRATION_LOCK = 0x5_70_C0
"""``pg_advisory_xact_lock`` key: processes opening a new database migrate one at a time."""

EVENTS_AFTER = (
    "SELECT position, aggregate_type, aggregate_id, sequence, event_type, payload, metadata, "
    "recorded_at FROM events WHERE position > %s ORDER BY position LIMIT %s"
)
_HOLDER = (
    "SELECT epoch, pid, host, since, expires_at > now() + make_interval(secs => %s) "
    "FROM lease WHERE name = %s"
)


@functools.lru_cache(maxsize=512)
def pg(sql: str) -> str:
    """The store's ``?`` placeholders in psycopg's style (``%s``; a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresExecutor:
    """:class:`~.writes.Executor` on a psycopg connection."""

    __slots__ = ("_db",)

    def __init__(self, db: psycopg.Connection[Any]) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._db.execute(pg(sql), params)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(pg(sql), params).fetchone()
        return row

    def trade_ref(self, trade: int) -> object:
        return str(trade)  # counterpart is a text column here


KEEPALIVES: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
"""A peer gone silent (a cut network, a frozen server) breaks the connection in seconds."""


def connect(
    dsn: str, *, read_only: bool = False, idle_in_transaction: float | None = None
) -> psycopg.Connection[Any]:
    """The writer's connection. ``idle_in_transaction``: seconds after which the server
    ends a transaction its client went silent in (a frozen holder must not keep the
    lease row locked, or no standby could ever take it)."""
    options = "-c default_transaction_read_only=on" if read_only else ""
    if idle_in_transaction is not None:
        options += f" -c idle_in_transaction_session_timeout={max(1, int(idle_in_transaction * 1000))}"
    return psycopg.connect(
        dsn,
        autocommit=True,
        application_name="st0x-liquidity",
        options=options.strip(),
        connect_timeout=10,
        **KEEPALIVES,
    )


@contextlib.contextmanager
def transaction(db: psycopg.Connection[Any], epoch: int | None = None) -> Iterator[None]:
    """One transaction; with ``epoch``, fenced: the lease row is locked and must be ours."""
    with db.transaction():
        if epoch is not None:
            holder = read_holder(db, lock=" FOR KEY SHARE")
            if holder is None or holder[0].epoch != epoch:
                who = holder[0].describe() if holder else "nobody"
                raise LeaseLostError(
                    f"lost the lease: the database is now held by {who} "
                    f"(epoch {holder[0].epoch if holder else '?'}, ours was {epoch}); stopping"
                )
        yield


def schema_version(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    row = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def migrate(db: psycopg.Connection[Any], name: str) -> None:
    """Apply missing migrations, each in its own transaction under an advisory lock."""
    first = POSTGRES_MIGRATIONS[0][0]
    for version, description, sql in POSTGRES_MIGRATIONS:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                'description TEXT COLLATE "C" NOT NULL, applied_at TEXT COLLATE "C" NOT NULL)'
            )
            current = schema_version(db)
            if current > LATEST_VERSION:
                raise StoreError(too_new(name, current))
            if version <= current:
                continue
            db.execute(sql.encode())
            now = datetime.now(UTC).isoformat()
            if version == first:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('database_id', %s), ('created_at', %s)",
                    (uuid.uuid4().hex[:12], now),
                )
            db.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s)", (version, description, now)
            )


def too_new(name: str, version: int) -> str:
    return (
        f"{name} has schema version {version}, newer than this program knows "
        f"({LATEST_VERSION}); upgrade st0x-liquidity"
    )


def read_holder(
    db: psycopg.Connection[Any], *, lock: str = "", margin: float = 0.0
) -> tuple[LeaseHolder, bool] | None:
    """The lease row's holder and whether its lease is live (``margin`` seconds ahead);
    ``lock``: a row-locking clause (``" FOR UPDATE"``, ``" FOR KEY SHARE"``)."""
    row = db.execute(_HOLDER + lock, (margin, LEASE_NAME)).fetchone()
    if row is None:
        return None
    return LeaseHolder(int(row[0]), int(row[1]), row[2], row[3]), bool(row[4])


def take_lease(
    db: psycopg.Connection[Any], ttl: float
) -> tuple[LeaseHolder | None, LeaseHolder | None]:
    """``(me, None)`` with a new epoch, or ``(None, holder)`` while another's lease is live.

    The row lock is waited for briefly only: a holder frozen mid-transaction keeps
    it until the server ends that transaction (``idle_in_transaction``), and a
    standby asking meanwhile hears "held" and asks again.
    """
    try:
        with db.transaction():
            db.execute("SET LOCAL lock_timeout = '1s'")
            return _take(db, ttl)
    except psycopg.errors.LockNotAvailable:
        return None, None


def _take(db: psycopg.Connection[Any], ttl: float) -> tuple[LeaseHolder | None, LeaseHolder | None]:
    previous = read_holder(db, lock=" FOR UPDATE")
    if previous is not None and previous[1]:
        return None, previous[0]
    me = this_holder((previous[0].epoch if previous else 0) + 1)
    db.execute(
        "INSERT INTO lease (name, epoch, pid, host, since, renewed_at, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s)) "
        "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, pid = excluded.pid, "
        "host = excluded.host, since = excluded.since, renewed_at = excluded.renewed_at, "
        "expires_at = excluded.expires_at",
        (LEASE_NAME, me.epoch, me.pid, me.host, me.since, me.since, ttl),
    )
    return me, None


LAST_COMMIT = "last_commit"
"""``meta`` key: the token of the engine's last committed transaction (see :func:`landed`)."""


def write_events(
    db: psycopg.Connection[Any],
    epoch: int,
    entries: Sequence[Encoded],
    known: dict[Key, int],
    token: str = "",
) -> tuple[list[list[StoredEvent]], dict[Key, int]]:
    """One fenced transaction: the entries' events with their sequences, and their views.

    With ``token``, the transaction also records it as the last commit, so a
    writer whose connection dropped during ``COMMIT`` can ask :func:`landed`.
    """
    with transaction(db, epoch):
        # After the lease row is locked: the commit's own time.
        result = append_entries(PostgresExecutor(db), entries, known, datetime.now(UTC))
        if token:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (LAST_COMMIT, token),
            )
        return result


def landed(
    db: psycopg.Connection[Any], entries: Sequence[Encoded], token: str
) -> tuple[list[list[StoredEvent]], dict[Key, int]] | None:
    """The entries as stored if the commit that carried ``token`` landed, else None.

    Only the lease holder writes the event log, one commit at a time, so if
    its token is the last commit's, the last events of each of its streams are
    exactly its events: read back, in the order they were written.
    """
    row = db.execute("SELECT value FROM meta WHERE key = %s", (LAST_COMMIT,)).fetchone()
    if row is None or row[0] != token:
        return None
    counts: dict[Key, int] = {}
    for entry in entries:
        for new, _payload, _metadata in entry:
            key = (new.aggregate_type, new.aggregate_id)
            counts[key] = counts.get(key, 0) + 1
    stored: dict[Key, list[StoredEvent]] = {}
    for key, n in counts.items():
        rows = db.execute(
            "SELECT position, aggregate_type, aggregate_id, sequence, event_type, payload, "
            "metadata, recorded_at FROM events WHERE aggregate_type = %s AND aggregate_id = %s "
            "ORDER BY sequence DESC LIMIT %s",
            (*key, n),
        ).fetchall()
        stored[key] = [stored_from_row(r)[1] for r in reversed(rows)]
    results: list[list[StoredEvent]] = []
    taken = dict.fromkeys(counts, 0)
    for entry in entries:
        out = []
        for new, _payload, _metadata in entry:
            key = (new.aggregate_type, new.aggregate_id)
            event = stored[key][taken[key]]
            taken[key] += 1
            if event.event.TYPE != new.event.TYPE:
                raise StoreError(
                    f"the commit landed but {key[0]}/{key[1]} #{event.sequence} is "
                    f"{event.event.TYPE}, not {new.event.TYPE}"
                )
            out.append(event)
        results.append(out)
    return results, {key: events[-1].sequence for key, events in stored.items()}


def rebuild_views(db: psycopg.Connection[Any], epoch: int) -> int:
    """Empty every view and refill it from the events, in one fenced transaction."""
    out = PostgresExecutor(db)
    with transaction(db, epoch):
        db.execute(f"TRUNCATE {', '.join(VIEW_TABLES)}")
        count = last = 0
        while rows := db.execute(EVENTS_AFTER, (last, 5000)).fetchall():
            for row in rows:
                apply_event(out, stored_from_row(row)[1])
            last = int(rows[-1][0])
            count += len(rows)
        db.execute("DELETE FROM meta WHERE key = %s", (VIEWS_STALE,))
    return count


def put_blob(db: psycopg.Connection[Any], namespace: str, key: str, value: bytes) -> None:
    with transaction(db):
        db.execute(
            "INSERT INTO plugin_blobs VALUES (%s, %s, %s, %s) ON CONFLICT (namespace, key) "
            "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (namespace, key, value, datetime.now(UTC).isoformat()),
        )

"""The schema on PostgreSQL: the same tables, versions and story as :mod:`.schema`.

PostgreSQL databases start at schema 10, the SQLite schema of the version
that introduced this backend, in one migration; every later migration gets
the same number on both backends, so ``schema_migrations`` means the same
and a newer database is refused the same way.

What differs, and why:

* every text column is ``COLLATE "C"``: ordering by symbol or order id is
  bytewise, as SQLite's, whatever the server's default locale;
* quantities stay canonical decimal text; ``dec_add`` is a SQL function
  over ``numeric`` (exact, arbitrary precision) with ``trim_scale``, which
  gives the spelling of :func:`~.writes.dec_add` (no exponent, no trailing
  zeros, ``0`` for zero);
* ``events.position`` and ``onchain_trades.id`` stand for SQLite's rowids:
  the next number after the largest, taken inside the (lease-serialised)
  writer's transaction, so a rolled-back commit leaves no gap and
  ``rebuild-views`` gives every fill the id it had;
* ``fill_allocations.counterpart`` is text (a ``client_order_id``, or a
  fill's id as text for a netting); the ``fill_links`` view casts;
* the lease row has ``expires_at`` (a ``timestamptz``, on the server's
  clock), renewed by its holder: PostgreSQL has no ``flock``.
"""

from __future__ import annotations

import re

from .schema import LATEST_VERSION

_TABLES = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE events (
    position BIGINT NOT NULL UNIQUE DEFAULT next_event_position(),
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    event_version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_change('events are append-only');
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('events are append-only');

CREATE TABLE onchain_trades (
    id BIGINT PRIMARY KEY DEFAULT next_trade_id(),
    tx_hash TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    symbol TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('BUY', 'SELL')),
    amount TEXT NOT NULL,
    price TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    block_timestamp TEXT NOT NULL,
    arrival BIGINT NOT NULL,
    open_quantity TEXT NOT NULL,
    source TEXT,
    recorded_at TEXT NOT NULL,
    corrects TEXT,
    correction INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tx_hash, log_index)
);
CREATE INDEX onchain_trades_corrects ON onchain_trades (corrects) WHERE corrects IS NOT NULL;

CREATE TABLE hedge_orders (
    client_order_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity TEXT NOT NULL,
    reference_price TEXT NOT NULL,
    state TEXT NOT NULL,
    broker_order_id TEXT,
    filled_quantity TEXT NOT NULL,
    average_price TEXT,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX hedge_orders_one_open_per_symbol ON hedge_orders (symbol)
    WHERE state IN ('pending', 'submitted', 'partially_filled');
CREATE INDEX hedge_orders_state ON hedge_orders (state);

CREATE TABLE fill_allocations (
    trade BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('netted', 'reserved', 'hedged')),
    counterpart TEXT NOT NULL,
    quantity TEXT NOT NULL,
    PRIMARY KEY (trade, kind, counterpart)
);
CREATE INDEX fill_allocations_counterpart ON fill_allocations (counterpart, kind);

CREATE TABLE positions (
    symbol TEXT PRIMARY KEY,
    net TEXT NOT NULL,
    open_quantity TEXT NOT NULL,
    last_price TEXT,
    hedges_placed INTEGER NOT NULL,
    pending_hedge TEXT,
    fills INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE source_cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE skipped_inputs (
    source TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    cursor TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (source, sequence)
);

CREATE TABLE plugin_blobs (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BYTEA NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE metrics_pnl (
    position BIGINT PRIMARY KEY,
    symbol TEXT NOT NULL,
    time TEXT NOT NULL,
    trade_time TEXT NOT NULL,
    venue TEXT NOT NULL CHECK (venue IN ('onchain', 'broker')),
    trade_id TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('BUY', 'SELL')),
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    matched_quantity TEXT NOT NULL,
    realized_pnl TEXT,
    cumulative_pnl TEXT NOT NULL,
    net_position_after TEXT NOT NULL,
    UNIQUE (venue, trade_id)
);
CREATE INDEX metrics_pnl_symbol ON metrics_pnl (symbol, position);
CREATE INDEX metrics_pnl_time ON metrics_pnl (time);
CREATE TABLE metrics_pnl_lots (
    symbol TEXT NOT NULL,
    seq BIGINT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('BUY', 'SELL')),
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    PRIMARY KEY (symbol, seq)
);
CREATE TABLE metrics_pnl_symbols (
    symbol TEXT PRIMARY KEY,
    cumulative_pnl TEXT NOT NULL,
    last_position BIGINT NOT NULL
);
CREATE TABLE metrics_pnl_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE circuit_breaker_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('pause', 'resume')),
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    remote TEXT
);
CREATE TRIGGER circuit_breaker_log_no_change BEFORE UPDATE OR DELETE ON circuit_breaker_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the circuit breaker log is append-only');

CREATE TABLE rebalancing_events (
    position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    core_position BIGINT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (stream, sequence)
);
CREATE TRIGGER rebalancing_events_no_change BEFORE UPDATE OR DELETE ON rebalancing_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change('rebalancing events are append-only');

CREATE TABLE lease (
    name TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    pid BIGINT NOT NULL,
    host TEXT NOT NULL,
    since TEXT NOT NULL,
    renewed_at TEXT NOT NULL,
    expires_at TIMESTAMPTZ
);
"""

_FUNCTIONS = """
CREATE FUNCTION dec_add(a TEXT, b TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN trim_scale(COALESCE(a, '0')::numeric + COALESCE(b, '0')::numeric)::text;
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation'; END $$;
-- The rowids' stand-ins (plpgsql: the bodies name tables created after them).
CREATE FUNCTION next_event_position() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
BEGIN RETURN (SELECT COALESCE(MAX(position), 0) + 1 FROM events); END $$;
CREATE FUNCTION next_trade_id() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
BEGIN RETURN (SELECT COALESCE(MAX(id), 0) + 1 FROM onchain_trades); END $$;
"""

_VIEWS = """
CREATE VIEW fill_links AS
    SELECT t.tx_hash, t.log_index, a.kind,
           CASE WHEN a.kind = 'netted' THEN c.tx_hash || ':' || c.log_index
                ELSE a.counterpart END AS counterpart,
           a.quantity
    FROM fill_allocations a JOIN onchain_trades t ON t.id = a.trade
    LEFT JOIN onchain_trades c ON a.kind = 'netted' AND c.id::text = a.counterpart
    UNION ALL
    SELECT c.tx_hash, c.log_index, 'netted', t.tx_hash || ':' || t.log_index, a.quantity
    FROM fill_allocations a JOIN onchain_trades t ON t.id = a.trade
    JOIN onchain_trades c ON a.counterpart = c.id::text
    WHERE a.kind = 'netted';
"""


def _collate_c(ddl: str) -> str:
    """Every text column bytewise, as SQLite compares (``TEXT`` -> ``TEXT COLLATE "C"``)."""
    return re.sub(r"\bTEXT\b(?= NOT NULL| PRIMARY KEY|,|\n)", 'TEXT COLLATE "C"', ddl)


POSTGRES_MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        10,
        "the event log, its views, side tables and the lease (SQLite schema 10)",
        _FUNCTIONS + _collate_c(_TABLES) + _VIEWS,
    ),
    (
        11,
        "trading state requests (risk command, dashboard, reconciliation)",
        _collate_c(
            """
CREATE TABLE trading_state_log (
    id BIGSERIAL PRIMARY KEY,
    at TEXT NOT NULL,
    symbol TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'reducing', 'halted')),
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    remote TEXT
);
CREATE TRIGGER trading_state_log_no_change BEFORE UPDATE OR DELETE ON trading_state_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the trading state log is append-only');
"""
        ),
    ),
    (
        12,
        "limit orders for extended-hours hedges: their price, session, reference and cancel",
        _collate_c(
            """
ALTER TABLE hedge_orders ADD COLUMN order_type TEXT;
ALTER TABLE hedge_orders ADD COLUMN limit_price TEXT;
ALTER TABLE hedge_orders ADD COLUMN session TEXT;
ALTER TABLE hedge_orders ADD COLUMN reference_source TEXT;
ALTER TABLE hedge_orders ADD COLUMN onchain_price TEXT;
ALTER TABLE hedge_orders ADD COLUMN submitted_at TEXT;
ALTER TABLE hedge_orders ADD COLUMN cancel_requested_at TEXT;
ALTER TABLE hedge_orders ADD COLUMN cancel_reason TEXT;
"""
        ),
    ),
)
"""``(version, description, sql)``; the last one's version is :data:`LATEST_VERSION`."""

assert POSTGRES_MIGRATIONS[-1][0] == LATEST_VERSION, "add the migration to both backends"

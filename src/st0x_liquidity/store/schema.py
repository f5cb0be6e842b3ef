"""Versioned schema migrations, applied in order on open.

Migrations only ever add: a database written by an older version opens in a
newer one, and one written by a newer version is refused with a clear error
instead of being misread.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "event log and hedging views",
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE events (
            aggregate_type TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            event_version INTEGER NOT NULL,
            payload TEXT NOT NULL,
            metadata TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id, sequence)
        );
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

        CREATE TABLE onchain_trades (
            tx_hash TEXT NOT NULL,
            log_index INTEGER NOT NULL,
            symbol TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('BUY', 'SELL')),
            amount TEXT NOT NULL,
            price TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            block_timestamp TEXT NOT NULL,
            arrival INTEGER NOT NULL,
            open_quantity TEXT NOT NULL,
            source TEXT,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (tx_hash, log_index)
        );
        CREATE INDEX onchain_trades_symbol ON onchain_trades (symbol, arrival);

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

        CREATE TABLE fill_links (
            tx_hash TEXT NOT NULL,
            log_index INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('netted', 'reserved', 'hedged')),
            counterpart TEXT NOT NULL,
            quantity TEXT NOT NULL,
            PRIMARY KEY (tx_hash, log_index, kind, counterpart)
        );
        CREATE INDEX fill_links_counterpart ON fill_links (counterpart, kind);

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
            sequence INTEGER NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            cursor TEXT,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (source, sequence)
        );
        """,
    ),
    (
        2,
        "opaque plugin state (encrypted tokens and the like)",
        """
        CREATE TABLE plugin_blobs (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (namespace, key)
        );
        CREATE INDEX hedge_orders_state ON hedge_orders (state);
        """,
    ),
    (
        3,
        "FIFO P&L (metrics_pnl, its lots and checkpoint) and the circuit breaker log",
        """
        CREATE TABLE metrics_pnl (
            position INTEGER PRIMARY KEY,
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
            seq INTEGER NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('BUY', 'SELL')),
            quantity TEXT NOT NULL,
            price TEXT NOT NULL,
            opened_by TEXT NOT NULL,
            PRIMARY KEY (symbol, seq)
        );
        CREATE TABLE metrics_pnl_symbols (
            symbol TEXT PRIMARY KEY,
            cumulative_pnl TEXT NOT NULL,
            last_position INTEGER NOT NULL
        );
        CREATE TABLE metrics_pnl_checkpoint (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            position INTEGER NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE circuit_breaker_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            action TEXT NOT NULL CHECK (action IN ('pause', 'resume')),
            reason TEXT NOT NULL,
            actor TEXT NOT NULL,
            remote TEXT
        );
        CREATE TRIGGER circuit_breaker_log_no_update BEFORE UPDATE ON circuit_breaker_log
        BEGIN SELECT RAISE(ABORT, 'the circuit breaker log is append-only'); END;
        CREATE TRIGGER circuit_breaker_log_no_delete BEFORE DELETE ON circuit_breaker_log
        BEGIN SELECT RAISE(ABORT, 'the circuit breaker log is append-only'); END;
        """,
    ),
    (
        4,
        "rebalancing: inventory snapshots and mint/redeem operations (own append-only log)",
        """
        CREATE TABLE rebalancing_events (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            stream TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            payload TEXT NOT NULL,
            core_position INTEGER NOT NULL,
            recorded_at TEXT NOT NULL,
            UNIQUE (stream, sequence)
        );
        CREATE TRIGGER rebalancing_events_no_update BEFORE UPDATE ON rebalancing_events
        BEGIN SELECT RAISE(ABORT, 'rebalancing events are append-only'); END;
        CREATE TRIGGER rebalancing_events_no_delete BEFORE DELETE ON rebalancing_events
        BEGIN SELECT RAISE(ABORT, 'rebalancing events are append-only'); END;
        """,
    ),
    (
        5,
        "reorg corrections: compensating entries name the fill they correct",
        """
        ALTER TABLE onchain_trades ADD COLUMN corrects TEXT;
        ALTER TABLE onchain_trades ADD COLUMN correction INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX onchain_trades_corrects ON onchain_trades (corrects);
        """,
    ),
    (
        6,
        "index only the fills that correct another (one index entry fewer per fill)",
        """
        DROP INDEX onchain_trades_corrects;
        CREATE INDEX onchain_trades_corrects ON onchain_trades (corrects)
            WHERE corrects IS NOT NULL;
        """,
    ),
    (
        7,
        "fill_allocations: a netting stored once, without rowid; fill_links a view of both sides",
        """
        DROP TABLE fill_links;
        CREATE TABLE fill_allocations (
            tx_hash TEXT NOT NULL,
            log_index INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('netted', 'reserved', 'hedged')),
            counterpart TEXT NOT NULL,
            quantity TEXT NOT NULL,
            PRIMARY KEY (tx_hash, log_index, kind, counterpart)
        ) WITHOUT ROWID;
        CREATE INDEX fill_allocations_counterpart ON fill_allocations (counterpart, kind);
        CREATE VIEW fill_links AS
            SELECT tx_hash, log_index, kind, counterpart, quantity FROM fill_allocations
            UNION ALL
            SELECT substr(counterpart, 1, instr(counterpart, ':') - 1),
                   CAST(substr(counterpart, instr(counterpart, ':') + 1) AS INTEGER),
                   'netted', tx_hash || ':' || log_index, quantity
            FROM fill_allocations WHERE kind = 'netted';
        INSERT OR REPLACE INTO meta (key, value)
            SELECT 'views_stale', '7' WHERE EXISTS (SELECT 1 FROM events);
        """,
    ),
    (
        8,
        "no per-symbol index on onchain_trades (about a tenth of the writer's work)",
        # Fills of many symbols interleave, so each insert landed mid-index
        # (a page split every few dozen rows) instead of at its end. Start-up
        # and the whole-book audit read every row anyway: a scan and a sort of
        # what they keep is faster (start-up's open lots at 100k fills: 21 ms,
        # 150 through the index). `audit --symbol` scans too: 40 ms, was 24.
        """
        DROP INDEX onchain_trades_symbol;
        """,
    ),
    (
        9,
        "fill_allocations keyed by onchain_trades.id (an integer, not two 66-character texts)",
        # A link row named its fill and, for a netting, the older fill by their
        # text ids: ~150-byte keys in the table and again in the counterpart
        # index. By onchain_trades' integer id they are a few bytes: the
        # writer writes ~28 % fewer blocks (less kernel time, a database a quarter
        # smaller); its instructions stay about the same (the id lookups cost
        # about what the smaller keys save).
        # ``id`` is declared (an alias of the rowid) because VACUUM may renumber
        # an undeclared rowid; existing rows keep theirs (insertion order).
        """
        DROP VIEW fill_links;
        CREATE TABLE onchain_trades_v9 (
            id INTEGER PRIMARY KEY,
            tx_hash TEXT NOT NULL,
            log_index INTEGER NOT NULL,
            symbol TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('BUY', 'SELL')),
            amount TEXT NOT NULL,
            price TEXT NOT NULL,
            block_number INTEGER NOT NULL,
            block_timestamp TEXT NOT NULL,
            arrival INTEGER NOT NULL,
            open_quantity TEXT NOT NULL,
            source TEXT,
            recorded_at TEXT NOT NULL,
            corrects TEXT,
            correction INTEGER NOT NULL DEFAULT 0,
            UNIQUE (tx_hash, log_index)
        );
        INSERT INTO onchain_trades_v9 (id, tx_hash, log_index, symbol, direction, amount, price,
                block_number, block_timestamp, arrival, open_quantity, source, recorded_at,
                corrects, correction)
            SELECT rowid, tx_hash, log_index, symbol, direction, amount, price, block_number,
                block_timestamp, arrival, open_quantity, source, recorded_at, corrects, correction
            FROM onchain_trades ORDER BY rowid;
        CREATE TABLE fill_allocations_v9 (
            trade INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('netted', 'reserved', 'hedged')),
            counterpart NOT NULL,
            quantity TEXT NOT NULL,
            PRIMARY KEY (trade, kind, counterpart)
        ) WITHOUT ROWID;
        INSERT INTO fill_allocations_v9 (trade, kind, counterpart, quantity)
            SELECT t.id, a.kind,
                CASE WHEN a.kind = 'netted' THEN (
                    SELECT c.id FROM onchain_trades_v9 c
                    WHERE c.tx_hash = substr(a.counterpart, 1, instr(a.counterpart, ':') - 1)
                    AND c.log_index = CAST(substr(a.counterpart, instr(a.counterpart, ':') + 1)
                        AS INTEGER)
                ) ELSE a.counterpart END,
                a.quantity
            FROM fill_allocations a JOIN onchain_trades_v9 t USING (tx_hash, log_index);
        DROP TABLE fill_allocations;
        DROP TABLE onchain_trades;
        ALTER TABLE onchain_trades_v9 RENAME TO onchain_trades;
        ALTER TABLE fill_allocations_v9 RENAME TO fill_allocations;
        CREATE INDEX onchain_trades_corrects ON onchain_trades (corrects)
            WHERE corrects IS NOT NULL;
        CREATE INDEX fill_allocations_counterpart ON fill_allocations (counterpart, kind);
        CREATE VIEW fill_links AS
            SELECT t.tx_hash, t.log_index, a.kind,
                   CASE WHEN a.kind = 'netted' THEN c.tx_hash || ':' || c.log_index
                        ELSE a.counterpart END AS counterpart,
                   a.quantity
            FROM fill_allocations a JOIN onchain_trades t ON t.id = a.trade
            LEFT JOIN onchain_trades c ON a.kind = 'netted' AND c.id = a.counterpart
            UNION ALL
            SELECT c.tx_hash, c.log_index, 'netted', t.tx_hash || ':' || t.log_index, a.quantity
            FROM fill_allocations a JOIN onchain_trades t ON t.id = a.trade
            -- +c.id: an expression without affinity, so the counterpart index
            -- serves the join (c.id's INTEGER affinity would convert the column).
            JOIN onchain_trades c ON a.counterpart = +c.id
            WHERE a.kind = 'netted';
        """,
    ),
    (
        10,
        "the engine's lease: one writer per database, fenced by an epoch",
        # One row per lease name ('engine'); epoch grows with every
        # acquisition and every engine write transaction checks it.
        """
        CREATE TABLE lease (
            name TEXT PRIMARY KEY,
            epoch INTEGER NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            since TEXT NOT NULL,
            renewed_at TEXT NOT NULL,
            expires_at TEXT
        );
        """,
    ),
    (
        11,
        "trading state requests (risk command, dashboard, reconciliation)",
        # Written beside a running engine (the `risk` command), one short
        # transaction per row; the engine folds it on start, follows it while
        # running, and records each row it applies as a TradingStateChanged event.
        """
        CREATE TABLE trading_state_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            symbol TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('active', 'reducing', 'halted')),
            reason TEXT NOT NULL,
            actor TEXT NOT NULL,
            remote TEXT
        );
        CREATE TRIGGER trading_state_log_no_update BEFORE UPDATE ON trading_state_log
        BEGIN SELECT RAISE(ABORT, 'the trading state log is append-only'); END;
        CREATE TRIGGER trading_state_log_no_delete BEFORE DELETE ON trading_state_log
        BEGIN SELECT RAISE(ABORT, 'the trading state log is append-only'); END;
        """,
    ),
    (
        12,
        "limit orders for extended-hours hedges: their price, session, reference and cancel",
        # NULL for market orders and for every order written before (they read
        # back as market orders); filled from HedgeIntended, HedgeSubmitted and
        # HedgeCancelRequested events, so rebuild-views fills them too.
        """
        ALTER TABLE hedge_orders ADD COLUMN order_type TEXT;
        ALTER TABLE hedge_orders ADD COLUMN limit_price TEXT;
        ALTER TABLE hedge_orders ADD COLUMN session TEXT;
        ALTER TABLE hedge_orders ADD COLUMN reference_source TEXT;
        ALTER TABLE hedge_orders ADD COLUMN onchain_price TEXT;
        ALTER TABLE hedge_orders ADD COLUMN submitted_at TEXT;
        ALTER TABLE hedge_orders ADD COLUMN cancel_requested_at TEXT;
        ALTER TABLE hedge_orders ADD COLUMN cancel_reason TEXT;
        """,
    ),
)

VIEW_TABLES = (
    "onchain_trades",
    "hedge_orders",
    "fill_allocations",
    "positions",
    "source_cursors",
    "skipped_inputs",
)
"""Tables derived from ``events``: emptied and refilled by ``rebuild-views``."""

VIEWS_STALE = "views_stale"
"""``meta`` key set by a migration that changes a view table's shape: the store
rebuilds every view from the events on open, in one transaction that also
clears the key (a crash in between leaves it set, so the rebuild runs again)."""

LATEST_VERSION = MIGRATIONS[-1][0]

-- The cluster (RFC 0004 §1, §2; PostgreSQL's 0010 in SQLite's types): the broker
-- registry, the controller's lease, each partition's desired leader and the moves in
-- flight. Lease times are the database's clock, never a broker's.
CREATE TABLE brokers (
    node_id INTEGER PRIMARY KEY,
    incarnation INTEGER NOT NULL,          -- counters('broker_incarnation'), new at each start
    rack TEXT,                            -- broker.rack, NULL when unset
    endpoints TEXT NOT NULL,              -- JSON: [{listener, host, port, protocol}]
    state TEXT NOT NULL,                  -- 'live' | 'draining' | 'stopped' | 'expired'
    lease_expires_ms INTEGER NOT NULL,
    registered_ms INTEGER NOT NULL,
    wal_url TEXT,                         -- where this incarnation's object WAL is, if any
    load TEXT NOT NULL DEFAULT '{}'       -- measured load, for the balancer
);
CREATE TABLE controller (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    node_id INTEGER NOT NULL,
    controller_epoch INTEGER NOT NULL,
    lease_expires_ms INTEGER NOT NULL
);
ALTER TABLE partitions ADD COLUMN target_node INTEGER NOT NULL DEFAULT -1;
ALTER TABLE partitions ADD COLUMN wal_dirty INTEGER NOT NULL DEFAULT 0;
ALTER TABLE partitions ADD COLUMN assignment_generation INTEGER NOT NULL DEFAULT 0;
CREATE TABLE reassignments (
    stream_id INTEGER PRIMARY KEY,
    source_node INTEGER NOT NULL,
    target_node INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    reason TEXT NOT NULL                  -- 'operator' | 'failover' | 'rebalance' | 'drain'
);
-- No controller yet: the first broker to try takes it.
INSERT INTO controller VALUES (1, -1, 0, 0)

-- The cluster (RFC 0004 §1, §2): the broker registry, the controller's lease, each
-- partition's desired leader and the moves in flight. Lease times are the database's
-- clock, never a broker's.
CREATE TABLE brokers (
    node_id BIGINT PRIMARY KEY,
    incarnation BIGINT NOT NULL,          -- counters('broker_incarnation'), new at each start
    rack TEXT,                            -- broker.rack, NULL when unset
    endpoints TEXT NOT NULL,              -- JSON: [{listener, host, port, protocol}]
    state TEXT NOT NULL,                  -- 'live' | 'draining' | 'stopped' | 'expired'
    lease_expires_ms BIGINT NOT NULL,
    registered_ms BIGINT NOT NULL,
    wal_url TEXT,                         -- where this incarnation's object WAL is, if any
    load TEXT NOT NULL DEFAULT '{}'       -- measured load, for the balancer
);
CREATE TABLE controller (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    node_id BIGINT NOT NULL,
    controller_epoch BIGINT NOT NULL,
    lease_expires_ms BIGINT NOT NULL
);
ALTER TABLE partitions ADD COLUMN target_node BIGINT NOT NULL DEFAULT -1;
ALTER TABLE partitions ADD COLUMN wal_dirty BIGINT NOT NULL DEFAULT 0;
ALTER TABLE partitions ADD COLUMN assignment_generation BIGINT NOT NULL DEFAULT 0;
CREATE TABLE reassignments (
    stream_id BIGINT PRIMARY KEY,
    source_node BIGINT NOT NULL,
    target_node BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    reason TEXT NOT NULL                  -- 'operator' | 'failover' | 'rebalance' | 'drain'
);
-- No controller yet: the first broker to try takes it.
INSERT INTO controller VALUES (1, -1, 0, 0)

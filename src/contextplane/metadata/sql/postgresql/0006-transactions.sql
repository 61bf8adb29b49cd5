-- The transaction coordinator's state (as SQLite's 0006).
CREATE TABLE transactions (
    transactional_id TEXT COLLATE "C" PRIMARY KEY,
    producer_id BIGINT NOT NULL,
    previous_producer_id BIGINT NOT NULL DEFAULT -1,
    epoch BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    client_transaction_version BIGINT NOT NULL DEFAULT 0,
    start_ms BIGINT NOT NULL DEFAULT -1,
    update_ms BIGINT NOT NULL
);
CREATE TABLE transaction_partitions (
    transactional_id TEXT COLLATE "C" NOT NULL
        REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    topic TEXT COLLATE "C" NOT NULL,
    partition BIGINT NOT NULL,
    marker_written BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (transactional_id, topic, partition)
);
CREATE TABLE transaction_groups (
    transactional_id TEXT COLLATE "C" NOT NULL
        REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    group_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (transactional_id, group_id)
);
CREATE TABLE pending_txn_offsets (
    transactional_id TEXT COLLATE "C" NOT NULL
        REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    group_id TEXT COLLATE "C" NOT NULL,
    topic TEXT COLLATE "C" NOT NULL,
    partition BIGINT NOT NULL,
    committed_offset BIGINT NOT NULL,
    leader_epoch BIGINT NOT NULL,
    metadata TEXT,
    PRIMARY KEY (transactional_id, group_id, topic, partition)
);

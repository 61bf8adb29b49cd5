-- The transaction coordinator's state (RFC 0002): one row per transactional.id, the
-- partitions of its current transaction (with whether each has its marker), and the
-- offsets a transaction commits for a group, which become the group's committed offsets
-- in the transaction that completes a commit (an abort drops them).
CREATE TABLE transactions (
    transactional_id TEXT PRIMARY KEY,
    producer_id INTEGER NOT NULL,
    previous_producer_id INTEGER NOT NULL DEFAULT -1,
    epoch INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    client_transaction_version INTEGER NOT NULL DEFAULT 0,
    start_ms INTEGER NOT NULL DEFAULT -1,
    update_ms INTEGER NOT NULL
);
CREATE TABLE transaction_partitions (
    transactional_id TEXT NOT NULL REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    marker_written INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (transactional_id, topic, partition)
) WITHOUT ROWID;
CREATE TABLE transaction_groups (
    transactional_id TEXT NOT NULL REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    PRIMARY KEY (transactional_id, group_id)
) WITHOUT ROWID;
CREATE TABLE pending_txn_offsets (
    transactional_id TEXT NOT NULL REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    leader_epoch INTEGER NOT NULL,
    metadata TEXT,
    PRIMARY KEY (transactional_id, group_id, topic, partition)
) WITHOUT ROWID;

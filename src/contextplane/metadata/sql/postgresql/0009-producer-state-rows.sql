-- Producer state as rows (as SQLite's 0009). No PostgreSQL database ever held the JSON
-- snapshots SQLite's 0009 moves, so there is nothing to move.
CREATE TABLE producer_states (
    stream_id BIGINT NOT NULL REFERENCES partitions(stream_id) ON DELETE CASCADE,
    producer_id BIGINT NOT NULL,
    epoch BIGINT,                  -- NULL: no idempotent state, only an open transaction
    batches TEXT NOT NULL DEFAULT '[]',
    txn_first_offset BIGINT,       -- NULL: no transaction open
    PRIMARY KEY (stream_id, producer_id)
);
CREATE TABLE aborted_transactions (
    stream_id BIGINT NOT NULL REFERENCES partitions(stream_id) ON DELETE CASCADE,
    last_offset BIGINT NOT NULL,   -- the ABORT marker's offset
    producer_id BIGINT NOT NULL,
    first_offset BIGINT NOT NULL,
    PRIMARY KEY (stream_id, last_offset)
);

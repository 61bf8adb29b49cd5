-- KIP-932 share groups (RFC 0008 slice 4): each share partition's start offset (SPSO)
-- and state epoch, and its in-flight records as runs of one state and delivery count.
-- Written before the ShareFetch / ShareAcknowledge that changed them is answered; locks
-- (who holds an acquired record, until when) are not stored: after a restart acquired
-- records are available again, their delivery counts kept. At most
-- group.share.partition.max.record.locks records are in flight per share partition.
CREATE TABLE share_partition_state (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_index INTEGER NOT NULL,
    start_offset BIGINT NOT NULL,
    state_epoch BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition_index)
);
CREATE TABLE share_inflight (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_index INTEGER NOT NULL,
    first_offset BIGINT NOT NULL,
    last_offset BIGINT NOT NULL,
    state SMALLINT NOT NULL,
    delivery_count SMALLINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition_index, first_offset)
)

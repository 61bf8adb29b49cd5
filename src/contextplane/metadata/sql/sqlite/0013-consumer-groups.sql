-- KIP-848 consumer groups (RFC 0008 slice 2): what a restarted coordinator needs so that
-- members keep their epochs and partitions. One row per group (epochs, assignor, the
-- partition counts its target was computed from) and one per member: its metadata
-- (subscription, ids, rack, timeouts) and its assignment (epochs, current and target
-- partitions) apart, as Kafka's records are, so a new assignment does not rewrite a
-- subscription. Each is a JSON document the coordinator owns.
CREATE TABLE consumer_groups (
    group_id TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE consumer_group_members (
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    metadata TEXT NOT NULL,
    assignment TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);

-- Per-group configs (GROUP config resources: consumer.session.timeout.ms, ...), set with
-- IncrementalAlterConfigs whether or not the group exists.
CREATE TABLE group_configs (
    group_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (group_id, name)
)

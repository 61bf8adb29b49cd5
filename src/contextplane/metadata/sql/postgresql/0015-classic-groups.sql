-- Classic groups' membership (RFC 0008): one row per group, its GroupMetadataValue as
-- Kafka writes it to __consumer_offsets (protocol type, generation, protocol, leader and
-- each member's ids, timeouts, subscription and assignment). Written when a generation
-- gets its assignment, when the group empties and when a static member is replaced;
-- deleted with the group. A restarted coordinator loads each group Stable (Empty without
-- members) at its generation, so members heartbeat on without rejoining.
CREATE TABLE classic_groups (
    group_id TEXT PRIMARY KEY,
    metadata BYTEA NOT NULL
)

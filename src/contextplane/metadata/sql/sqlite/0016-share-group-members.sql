-- Share groups' membership (RFC 0008): one row per group, its epochs, the partition
-- counts its assignment was computed from, and each member's ids, epoch, subscription,
-- rack, assignment and target (coordinators/share_stored.py's JSON). Written before the
-- heartbeat that changed it is answered and when a timer expires a member; deleted with
-- the group. A restarted coordinator loads each group, so members heartbeat on at their
-- epochs without rejoining.
CREATE TABLE share_groups (
    group_id TEXT PRIMARY KEY,
    metadata BLOB NOT NULL
)

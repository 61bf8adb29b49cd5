-- A read replica's last stable offset is the first offset of the partition's oldest open
-- transaction (RFC 0004 §7): an index of the rows with one open, so that minimum is a
-- seek, not a scan of every producer the partition has seen.
CREATE INDEX producer_states_open_transactions ON producer_states (stream_id, txn_first_offset)
    WHERE txn_first_offset IS NOT NULL

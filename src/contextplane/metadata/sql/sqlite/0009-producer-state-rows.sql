-- Producer state as rows, so that an object commit writes only the producers it changed
-- (it rewrote the partition's whole table as one JSON document before). Snapshots in
-- partitions.producer_state are moved into the rows; the column stays, empty, unused.
CREATE TABLE producer_states (
    stream_id INTEGER NOT NULL REFERENCES partitions(stream_id) ON DELETE CASCADE,
    producer_id INTEGER NOT NULL,
    epoch INTEGER,                 -- NULL: no idempotent state, only an open transaction
    batches TEXT NOT NULL DEFAULT '[]',
    txn_first_offset INTEGER,      -- NULL: no transaction open
    PRIMARY KEY (stream_id, producer_id)
) WITHOUT ROWID;
CREATE TABLE aborted_transactions (
    stream_id INTEGER NOT NULL REFERENCES partitions(stream_id) ON DELETE CASCADE,
    last_offset INTEGER NOT NULL,  -- the ABORT marker's offset
    producer_id INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    PRIMARY KEY (stream_id, last_offset)
) WITHOUT ROWID;
INSERT INTO producer_states (stream_id, producer_id, epoch, batches)
SELECT p.stream_id, CAST(j.key AS INTEGER), json_extract(j.value, '$[0]'),
       json_extract(j.value, '$[1]')
FROM partitions p, json_each(p.producer_state) j
WHERE j.key != 'transactions';
INSERT INTO producer_states (stream_id, producer_id, txn_first_offset)
SELECT p.stream_id, CAST(j.key AS INTEGER), j.value
FROM partitions p, json_each(p.producer_state, '$.transactions.open') j
WHERE true
ON CONFLICT (stream_id, producer_id) DO UPDATE SET txn_first_offset = excluded.txn_first_offset;
INSERT INTO aborted_transactions (stream_id, last_offset, producer_id, first_offset)
SELECT p.stream_id, json_extract(j.value, '$[2]'), json_extract(j.value, '$[0]'),
       json_extract(j.value, '$[1]')
FROM partitions p, json_each(p.producer_state, '$.transactions.aborted') j
WHERE json_extract(j.value, '$[2]') >= p.log_start_offset;
UPDATE partitions SET producer_state = '{}' WHERE producer_state != '{}'

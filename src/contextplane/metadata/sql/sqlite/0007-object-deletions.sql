-- Objects that no range references any more, deleted from the object store once due
-- (log.segment.delete.delay.ms / file.delete.delay.ms later, so fetches holding them
-- finish). A row is written in the transaction that drops the object's last range and
-- removed once the object store has deleted the object.
CREATE TABLE objects_to_delete (
    key TEXT PRIMARY KEY,
    due_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX objects_to_delete_by_due ON objects_to_delete (due_ms);
-- The log cleaner's progress per partition (its first dirty offset, as Kafka's
-- cleaner-offset-checkpoint), replaced in the transaction that swaps the ranges it cleaned.
ALTER TABLE partitions ADD COLUMN cleaner_state TEXT NOT NULL DEFAULT '{}';

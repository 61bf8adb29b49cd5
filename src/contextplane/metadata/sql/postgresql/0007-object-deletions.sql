-- Objects no range references, deleted once due (as SQLite's 0007), and the log
-- cleaner's progress per partition.
CREATE TABLE objects_to_delete (
    key TEXT COLLATE "C" PRIMARY KEY,
    due_ms BIGINT NOT NULL
);
CREATE INDEX objects_to_delete_by_due ON objects_to_delete (due_ms);
ALTER TABLE partitions ADD COLUMN cleaner_state TEXT NOT NULL DEFAULT '{}';

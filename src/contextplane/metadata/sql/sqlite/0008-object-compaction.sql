-- Object compaction (RFC 0003, "1. Object compaction").
-- 0: an upload (a multi-partition object as the uploader wrote it); 1: a compacted
-- object (merged or stream, or the log cleaner's). The compaction planner selects level 0
-- by this column.
ALTER TABLE objects ADD COLUMN level INTEGER NOT NULL DEFAULT 0;
-- Number of streams with ranges in the object when it was written (1: a stream object,
-- as the cleaner writes); 0 for objects written before this migration (unknown).
ALTER TABLE objects ADD COLUMN streams INTEGER NOT NULL DEFAULT 0;
CREATE INDEX objects_by_level_created ON objects (level, created_ms);
-- When the range's first data was uploaded, if not its object's created_ms (NULL): a
-- merged object holds ranges of uploads of different ages, and retention rolls segments
-- by each range's upload time, which compaction must not change.
ALTER TABLE ranges ADD COLUMN created_ms INTEGER;

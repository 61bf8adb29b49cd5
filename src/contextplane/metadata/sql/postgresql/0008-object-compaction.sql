-- Object compaction (as SQLite's 0008): each object's level and stream count, and each
-- range's upload time when not its object's.
ALTER TABLE objects ADD COLUMN level BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN streams BIGINT NOT NULL DEFAULT 0;
CREATE INDEX objects_by_level_created ON objects (level, created_ms);
ALTER TABLE ranges ADD COLUMN created_ms BIGINT;

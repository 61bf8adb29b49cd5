-- A no-op, as SQLite's 0003 (which shipped as a placeholder): the SCRAM credential table
-- is migration 0005. Kept so that versions mean the same in every engine.
SELECT 1;

-- Was reserved for SCRAM credentials and shipped as a no-op, so databases have applied it
-- already: the SCRAM credential table is migration 0005.
SELECT 1;

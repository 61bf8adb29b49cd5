-- A broker reads the partition rows changed since the assignment generation it last saw
-- (RFC 0004 §1, change generations): an index, not a scan of every partition.
CREATE INDEX partitions_assignment_generation ON partitions (assignment_generation)

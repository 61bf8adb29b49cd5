-- The outage path of the dirty protocol (RFC 0004 §5): a broker whose row says 1 may
-- acknowledge records of a clean partition without writing its dirty mark first, while
-- the metadata store is out of its reach; every partition it leads is then treated as
-- dirty by claims and by the controller's failover. Set by its heartbeat (only while it
-- is the only live broker), cleared by the heartbeat or clean stop that writes its
-- owed marks.
ALTER TABLE brokers ADD COLUMN unmarked_acks BIGINT NOT NULL DEFAULT 0

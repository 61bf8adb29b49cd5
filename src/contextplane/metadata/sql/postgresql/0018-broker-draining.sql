-- The operator's drain of a node id (RFC 0004 §6, `contextplane cluster drain`): 1 from
-- the drain until the undrain, whatever the row's state. A registration of the id takes
-- state 'draining' instead of 'live' while it is set, so a restarted broker stays
-- drained (the state alone is lost when its row becomes 'stopped' or 'expired').
ALTER TABLE brokers ADD COLUMN draining BIGINT NOT NULL DEFAULT 0

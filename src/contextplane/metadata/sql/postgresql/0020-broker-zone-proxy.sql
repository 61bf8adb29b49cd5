-- Whether the broker stands in for its zone's clients (`zone.produce.proxy.enable`, RFC
-- 0004 §7): 1 when its registration had it on. A broker with the proxy on names only
-- such brokers of a zone as that zone's stand-ins, so one with it off (a rollout in
-- progress) is never named.
ALTER TABLE brokers ADD COLUMN zone_proxy BIGINT NOT NULL DEFAULT 0

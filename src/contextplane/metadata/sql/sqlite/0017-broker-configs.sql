-- Dynamic broker configs (RFC 0008, KIP-226): set with AlterConfigs and
-- IncrementalAlterConfigs on BROKER resources. `broker` is the node id as text for a
-- per-broker config, '' for the cluster default; Kafka's precedence is per-broker over
-- cluster default over the broker's static settings. Each alteration replaces one
-- resource's rows in one transaction; a broker applies them at start and on alteration.
CREATE TABLE broker_configs (
    broker TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (broker, name)
)

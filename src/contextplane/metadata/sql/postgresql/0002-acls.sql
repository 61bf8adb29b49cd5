-- Kafka ACL bindings (as SQLite's 0002): a binding is stored once.
CREATE TABLE acls (
    resource_type BIGINT NOT NULL,
    resource_name TEXT COLLATE "C" NOT NULL,
    pattern_type BIGINT NOT NULL,
    principal TEXT COLLATE "C" NOT NULL,
    host TEXT COLLATE "C" NOT NULL,
    operation BIGINT NOT NULL,
    permission BIGINT NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation, permission)
);

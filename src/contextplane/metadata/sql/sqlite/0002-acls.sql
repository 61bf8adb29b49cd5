-- Kafka ACL bindings (CreateAcls / DeleteAcls), loaded by the authorizer at start.
-- Codes are Kafka's (ResourceType, PatternType, AclOperation, AclPermissionType); a
-- binding is stored once.
CREATE TABLE acls (
    resource_type INTEGER NOT NULL,
    resource_name TEXT NOT NULL,
    pattern_type INTEGER NOT NULL,
    principal TEXT NOT NULL,
    host TEXT NOT NULL,
    operation INTEGER NOT NULL,
    permission INTEGER NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation, permission)
) WITHOUT ROWID;

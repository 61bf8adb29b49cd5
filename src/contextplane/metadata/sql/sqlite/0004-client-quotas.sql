-- Client quotas (AlterClientQuotas / DescribeClientQuotas), loaded at start. An entity is
-- stored as the JSON list of its [type, name] pairs sorted by type (name null: the
-- type's default); one row per quota key it sets.
CREATE TABLE client_quotas (
    entity TEXT NOT NULL,
    quota_key TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (entity, quota_key)
) WITHOUT ROWID;

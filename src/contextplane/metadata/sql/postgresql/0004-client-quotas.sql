-- Client quotas (as SQLite's 0004): an entity is the JSON list of its [type, name] pairs.
CREATE TABLE client_quotas (
    entity TEXT COLLATE "C" NOT NULL,
    quota_key TEXT COLLATE "C" NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (entity, quota_key)
);

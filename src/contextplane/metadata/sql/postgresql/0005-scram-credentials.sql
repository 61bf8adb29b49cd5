-- SCRAM credentials (as SQLite's 0005): salted and hashed, never a password.
CREATE TABLE scram_credentials (
    user_name TEXT COLLATE "C" NOT NULL,
    mechanism TEXT COLLATE "C" NOT NULL,
    salt BYTEA NOT NULL,
    stored_key BYTEA NOT NULL,
    server_key BYTEA NOT NULL,
    iterations BIGINT NOT NULL,
    PRIMARY KEY (user_name, mechanism)
);

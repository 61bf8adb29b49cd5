-- SCRAM credentials (AlterUserScramCredentials, `contextplane users`), loaded by the SASL
-- authenticator at start: one row per user and mechanism, salted and hashed as RFC 5802
-- keeps them (StoredKey, ServerKey); the password itself is never stored.
CREATE TABLE scram_credentials (
    user_name TEXT NOT NULL,
    mechanism TEXT NOT NULL,
    salt BLOB NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    PRIMARY KEY (user_name, mechanism)
) WITHOUT ROWID;

-- One-time credentials already used (a workload's subject token is
-- exchanged once), by hash, until they expire.
CREATE TABLE tokengate_used_credentials (
	hash    bytea       PRIMARY KEY,
	expires timestamptz NOT NULL
);

CREATE INDEX tokengate_used_credentials_expires ON tokengate_used_credentials (expires);

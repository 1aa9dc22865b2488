-- The web console's people: signed-in sessions (shared by every node, so
-- a person signed in on one acts on any) and WebAuthn security keys.
CREATE TABLE tokengate_console_sessions (
	id_hash      bytea       PRIMARY KEY, -- SHA-256 of the cookie; never the cookie
	principal    text        NOT NULL,
	person_groups text[]     NOT NULL DEFAULT '{}',
	created_at   timestamptz NOT NULL,
	last_seen_at timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL
);

CREATE INDEX tokengate_console_sessions_principal ON tokengate_console_sessions (principal);
CREATE INDEX tokengate_console_sessions_expires ON tokengate_console_sessions (expires_at);

CREATE TABLE tokengate_security_keys (
	credential_id bytea       PRIMARY KEY,
	principal     text        NOT NULL,
	name          text        NOT NULL,
	credential    bytea       NOT NULL, -- the WebAuthn library's record, opaque here
	sign_count    bigint      NOT NULL DEFAULT 0,
	created_at    timestamptz NOT NULL,
	last_used_at  timestamptz
);

CREATE INDEX tokengate_security_keys_principal ON tokengate_security_keys (principal, created_at);

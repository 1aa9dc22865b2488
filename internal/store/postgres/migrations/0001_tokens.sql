-- One row per token. A zero time in Go is NULL here; arrays are never NULL.
CREATE TABLE tokengate_tokens (
	id            text        PRIMARY KEY,
	hash          bytea       NOT NULL,
	owner         text        NOT NULL,
	purpose       text        NOT NULL,
	scopes        text[]      NOT NULL DEFAULT '{}',
	services      text[]      NOT NULL DEFAULT '{}',
	cidrs         text[]      NOT NULL DEFAULT '{}',
	not_before    timestamptz,
	expires_at    timestamptz,
	max_uses      bigint      NOT NULL DEFAULT 0,
	uses          bigint      NOT NULL DEFAULT 0,
	created_at    timestamptz,
	created_by    text        NOT NULL DEFAULT '',
	approved_by   text        NOT NULL DEFAULT '',
	rotated_from  text        NOT NULL DEFAULT '',
	rotated_to    text        NOT NULL DEFAULT '',
	grace_until   timestamptz,
	revoked_at    timestamptz,
	revoked_by    text        NOT NULL DEFAULT '',
	revoke_reason text        NOT NULL DEFAULT '',
	last_used_at  timestamptz,
	last_used_ip  text        NOT NULL DEFAULT '',
	used_scopes   text[]      NOT NULL DEFAULT '{}',
	version       bigint      NOT NULL DEFAULT 0
);

-- The data plane finds tokens only by the hash of their secret.
CREATE UNIQUE INDEX tokengate_tokens_hash_key ON tokengate_tokens (hash);

-- List returns tokens in creation order.
CREATE INDEX tokengate_tokens_created_at_idx ON tokengate_tokens (created_at NULLS FIRST, id);

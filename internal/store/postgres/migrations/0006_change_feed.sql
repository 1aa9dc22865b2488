-- The change feed: one row per change to a token that can alter a decision,
-- numbered, so a node that was cut off reads what it missed instead of
-- dropping its caches. Written by a trigger, so no code path that changes
-- a token can forget it.
--
-- seq orders changes; xid is the writing transaction, which lets a reader
-- tell a change that is not yet committed (and may commit with a smaller
-- seq than one it has already read) from one that never will: see
-- changefeed.go.
CREATE TABLE tokengate_changes (
	seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
	token_id   text        NOT NULL,
	changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX tokengate_changes_xid_idx ON tokengate_changes (xid);
CREATE INDEX tokengate_changes_changed_at_idx ON tokengate_changes (changed_at);

-- A use (ConsumeUse, RecordUsage) changes only the use count, the last use
-- and the scopes used, and the version with them. No node caches a
-- use-limited token or an allow for one, so a use is no feed event and
-- sends no NOTIFY: NOTIFY serialises every committing transaction that
-- sent one on a global lock, which every use of every token would take.
-- Any other change (revoke, rotate, expose, re-key, a changed limit) is
-- written to the feed and wakes the nodes.
CREATE FUNCTION tokengate_feed_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	-- Compared as whole rows less the use columns, so a column added later
	-- counts as a change without anyone remembering to list it here.
	IF to_jsonb(OLD) - '{uses,version,last_used_at,last_used_ip,used_scopes}'::text[]
	   IS NOT DISTINCT FROM
	   to_jsonb(NEW) - '{uses,version,last_used_at,last_used_ip,used_scopes}'::text[] THEN
		RETURN NULL;
	END IF;
	INSERT INTO tokengate_changes (token_id) VALUES (NEW.id);
	-- The payload is only a wake-up: nodes read the feed for what changed.
	PERFORM pg_notify('tokengate_tokens', '');
	RETURN NULL;
END
$$;

CREATE TRIGGER tokengate_feed_change AFTER UPDATE ON tokengate_tokens
	FOR EACH ROW EXECUTE FUNCTION tokengate_feed_change();

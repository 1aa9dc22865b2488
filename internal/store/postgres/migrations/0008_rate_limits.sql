-- Each token's own rate limit (0 requests: none) and the id its calls are
-- counted under ('' for its own: a rotated token counts with the first of
-- its chain), and the rate-limit
-- counters the nodes of a cluster share: per counter key and window, how
-- many calls the nodes have taken from the window's budget.
ALTER TABLE tokengate_tokens
	ADD COLUMN rate_limit_requests  bigint NOT NULL DEFAULT 0,
	ADD COLUMN rate_limit_window_ms bigint NOT NULL DEFAULT 0,
	ADD COLUMN rate_key             text   NOT NULL DEFAULT '';

CREATE TABLE tokengate_rate_budgets (
	key          text        NOT NULL,
	window_start timestamptz NOT NULL,
	total        bigint      NOT NULL,
	-- what the last take took, so one statement can both take and say how much
	last_taken   bigint      NOT NULL,
	keep_until   timestamptz NOT NULL,
	PRIMARY KEY (key, window_start)
);

CREATE INDEX tokengate_rate_budgets_keep_until ON tokengate_rate_budgets (keep_until);

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// censusQuery counts in the database, so a census of a million tokens
// moves a few rows, not a million. The CASE is store.StateOf, branch for
// branch (a NULL time is Go's zero time: a NULL expires_at has expired, a
// NULL grace_until or not_before is already past); the conformance suite
// checks the two agree. One statement, so one snapshot: the request count
// and the token counts are of the same instant.
const censusQuery = `
SELECT state, count(*), count(*) FILTER (WHERE expires_at <= $2)
FROM (
	SELECT expires_at, CASE
		WHEN exposed_at IS NOT NULL THEN 'exposed'
		WHEN revoked_at IS NOT NULL THEN 'revoked'
		WHEN rotated_to <> '' AND grace_until > $1 THEN 'rotating'
		WHEN rotated_to <> '' THEN 'rotated'
		WHEN expires_at IS NULL OR expires_at <= $1 THEN 'expired'
		WHEN max_uses > 0 AND uses >= max_uses THEN 'exhausted'
		WHEN not_before > $1 THEN 'pending'
		ELSE 'active'
	END AS state
	FROM tokengate_tokens
) AS t
GROUP BY state
UNION ALL
SELECT 'requests:pending', count(*), 0 FROM tokengate_requests WHERE status = 'pending'`

// Count counts tokens by state and pending requests in one query.
func (s *Store) Count(ctx context.Context, now time.Time, expiringWithin time.Duration) (*store.Census, error) {
	rows, err := s.pool.Query(ctx, censusQuery, now, now.Add(expiringWithin))
	if err != nil {
		return nil, fmt.Errorf("counting tokens: %w", err)
	}
	defer rows.Close()
	c := store.NewCensus()
	for rows.Next() {
		var state string
		var n, expiring int64
		if err := rows.Scan(&state, &n, &expiring); err != nil {
			return nil, fmt.Errorf("counting tokens: %w", err)
		}
		switch state {
		case "requests:pending":
			c.PendingRequests = n
		case store.StateActive, store.StatePending:
			c.ExpiringSoon += expiring
			c.Tokens[state] = n
		default:
			c.Tokens[state] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting tokens: %w", err)
	}
	return c, nil
}

var _ store.Counter = (*Store)(nil)

package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tokengate/caddy-tokengate/store"
)

// grant is store.BudgetTake.Grant in SQL, for want $3 and limit $4, of a
// window that has taken b.total.
const grant = `CASE WHEN $3::bigint < 0 THEN greatest($3::bigint, -b.total)
	ELSE greatest(0, least($3::bigint, $4::bigint - b.total)) END`

// takeBudget creates the window's counter or takes from it in one
// statement; the row lock of ON CONFLICT DO UPDATE serialises the takes
// of every node, so together they never take more than the limit.
// The SET expressions read the row as it was, which is how last_taken
// can say what this take took.
const takeBudget = `INSERT INTO tokengate_rate_budgets AS b (key, window_start, total, last_taken, keep_until)
	VALUES ($1, $2, greatest(0, least($3::bigint, $4::bigint)), greatest(0, least($3::bigint, $4::bigint)), $5)
	ON CONFLICT (key, window_start) DO UPDATE SET
		total = b.total + ` + grant + `,
		last_taken = ` + grant + `,
		keep_until = greatest(b.keep_until, EXCLUDED.keep_until)
	RETURNING last_taken, total`

// dropEndedBudgets deletes a few counters of windows that have ended, so
// the table does not grow with every window ever counted.
const dropEndedBudgets = `DELETE FROM tokengate_rate_budgets WHERE (key, window_start) IN (
	SELECT key, window_start FROM tokengate_rate_budgets WHERE keep_until <= $1 LIMIT 16)`

// TakeBudget sends the take and the clean-up as one pipelined batch: one
// round trip, run by PostgreSQL as one implicit transaction.
func (s *Store) TakeBudget(ctx context.Context, b store.BudgetTake) (taken, total int64, err error) {
	batch := &pgx.Batch{}
	batch.Queue(takeBudget, b.Key, b.Window, b.Want, b.Limit, b.KeepUntil).QueryRow(func(row pgx.Row) error {
		return row.Scan(&taken, &total)
	})
	batch.Queue(dropEndedBudgets, b.Window)
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return 0, 0, fmt.Errorf("taking rate-limit budget: %w", err)
	}
	return taken, total, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tokengate/caddy-tokengate/store"
)

func (s *Store) CreateRequest(ctx context.Context, r *store.Request) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding request %s: %w", r.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO tokengate_requests (id, status, created_at, doc) VALUES ($1, $2, $3, $4)`,
		r.ID, r.Status, r.CreatedAt, doc)
	return storeErr(err, "creating request "+r.ID)
}

func (s *Store) GetRequest(ctx context.Context, id string) (*store.Request, error) {
	r, err := scanRequest(s.pool.QueryRow(ctx, `SELECT doc FROM tokengate_requests WHERE id = $1`, id))
	return r, storeErr(err, "loading request "+id)
}

func (s *Store) ListRequests(ctx context.Context, status string) ([]*store.Request, error) {
	rows, _ := s.pool.Query(ctx, `SELECT doc FROM tokengate_requests
		WHERE ($1::text = '' OR status = $1) ORDER BY created_at, id`, status)
	reqs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Request, error) { return scanRequest(row) })
	if err != nil {
		return nil, fmt.Errorf("listing requests: %w", err)
	}
	return reqs, nil
}

func (s *Store) UpdateRequest(ctx context.Context, id string, change func(*store.Request) error) (*store.Request, error) {
	var r *store.Request
	err := s.inTx(ctx, "updating request "+id, func(tx pgx.Tx) error {
		var err error
		r, err = updateRequest(ctx, tx, id, change)
		return err
	})
	return r, err
}

func (s *Store) ClaimRequest(ctx context.Context, id string, change func(*store.Request) error, tok *store.Token) (*store.Request, error) {
	var r *store.Request
	err := s.inTx(ctx, "claiming request "+id, func(tx pgx.Tx) error {
		var err error
		if r, err = updateRequest(ctx, tx, id, change); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, insertToken, tokenArgs(tok)...)
		return storeErr(err, "creating token "+tok.ID)
	})
	return r, err
}

// CreateFirst serialises bootstraps across nodes with a transaction-scoped
// advisory lock, then checks and inserts under it.
func (s *Store) CreateFirst(ctx context.Context, service string, toks []*store.Token) error {
	return s.inTx(ctx, "creating first tokens", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('tokengate_create_first'))`); err != nil {
			return fmt.Errorf("locking for bootstrap: %w", err)
		}
		var exists bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tokengate_tokens WHERE $1 = ANY (services))`, service).Scan(&exists)
		if err != nil {
			return fmt.Errorf("checking for %s tokens: %w", service, err)
		}
		if exists {
			return store.ErrConflict
		}
		for _, t := range toks {
			if _, err := tx.Exec(ctx, insertToken, tokenArgs(t)...); err != nil {
				return storeErr(err, "creating token "+t.ID)
			}
		}
		return nil
	})
}

func updateRequest(ctx context.Context, tx pgx.Tx, id string, change func(*store.Request) error) (*store.Request, error) {
	r, err := scanRequest(tx.QueryRow(ctx, `SELECT doc FROM tokengate_requests WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return nil, storeErr(err, "loading request "+id)
	}
	if err := change(r); err != nil {
		return nil, err
	}
	r.Version++
	doc, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding request %s: %w", id, err)
	}
	_, err = tx.Exec(ctx, `UPDATE tokengate_requests SET status = $2, doc = $3 WHERE id = $1`, id, r.Status, doc)
	return r, storeErr(err, "storing request "+id)
}

func scanRequest(row pgx.Row) (*store.Request, error) {
	var doc []byte
	if err := row.Scan(&doc); err != nil {
		return nil, err
	}
	r := new(store.Request)
	if err := json.Unmarshal(doc, r); err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	return r, nil
}

var _ store.RequestStore = (*Store)(nil)

// Package postgres is the token store that several gateway nodes share. It
// keeps tokens in one PostgreSQL table, creates and migrates that table
// itself, and announces every change that can alter a decision with
// NOTIFY, so that each node's caches follow revokes and rotations made on
// any other node.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokengate/caddy-tokengate/store"
)

// channel is the NOTIFY channel that wakes the nodes when a token changed
// (the change feed trigger of migration 0006 sends it; the payload is
// empty: what changed is read from tokengate_changes).
const channel = "tokengate_tokens"

// columns lists the token columns in the order of tokenArgs and scanToken.
const columns = `id, hash, owner, purpose, scopes, services, cidrs, not_before, expires_at,
	max_uses, uses, created_at, created_by, approved_by, rotated_from, rotated_to,
	grace_until, revoked_at, revoked_by, revoke_reason, last_used_at, last_used_ip,
	used_scopes, version, held_by, holder_groups, exposed_at, exposure_source, exposure_url,
	rate_limit_requests, rate_limit_window_ms, rate_key`

// values holds one placeholder per column; $1 is always the id.
const values = `$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
	$17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32`

// announced finishes a statement that starts `WITH changed AS (UPDATE ...
// RETURNING columns)`: it returns the changed rows. The change feed
// trigger records and announces the change, if it is one (a use is not).
const announced = `SELECT ` + columns + ` FROM changed`

// applyUsage is store.ApplyUsage in SQL, for a usage whose time, address
// and scope are $2, $3 and $4: the last use only moves forward, and
// used_scopes stays a set sorted by byte value, as Go sorts strings.
const applyUsage = `
	last_used_ip = CASE WHEN $2::timestamptz > coalesce(last_used_at, '-infinity')
		THEN $3::text ELSE last_used_ip END,
	last_used_at = greatest(last_used_at, $2::timestamptz),
	used_scopes = CASE WHEN $4::text = '' OR $4::text = ANY (used_scopes) THEN used_scopes
		ELSE ARRAY(SELECT s FROM unnest(used_scopes || $4::text) s ORDER BY s COLLATE "C") END`

const (
	insertToken = `INSERT INTO tokengate_tokens (` + columns + `) VALUES (` + values + `)`

	selectForUpdate = `SELECT ` + columns + ` FROM tokengate_tokens WHERE id = $1 FOR UPDATE`

	updateToken = `WITH changed AS (
		UPDATE tokengate_tokens SET (` + columns + `) = (` + values + `)
		WHERE id = $1 RETURNING ` + columns + `
	) ` + announced

	// spendUse checks and spends a use in one statement; the row lock the
	// UPDATE takes is what keeps two nodes from both spending the last
	// use.
	spendUse = `WITH changed AS (
		UPDATE tokengate_tokens SET uses = uses + 1, version = version + 1, ` + applyUsage + `
		WHERE id = $1 AND (max_uses = 0 OR uses < max_uses)%s
		RETURNING ` + columns + `
	) ` + announced

	recordUsage = `UPDATE tokengate_tokens SET ` + applyUsage + ` WHERE id = $1`

	// predecessor names the token a token was rotated from. It needs no
	// lock: rotated_from is set once, when the token is created.
	predecessor = `SELECT rotated_from FROM tokengate_tokens WHERE id = $1`

	// lockSuccessor locks a token of a rotation chain and names the next.
	lockSuccessor = `SELECT rotated_to FROM tokengate_tokens WHERE id = $1 FOR UPDATE`

	// maxChain bounds the walk along rotated_to, so a damaged row that
	// points back into its own chain fails the call instead of hanging it.
	maxChain = 1000
)

var (
	// consumeUnrotated serves the common case, a token that was never
	// rotated, in one round trip. A concurrent rotation makes it match
	// nothing: PostgreSQL re-checks the WHERE clause on the row version
	// the rotation committed.
	consumeUnrotated = fmt.Sprintf(spendUse, ` AND rotated_to = ''`)
	// consumeHolder spends a use of a chain's newest token, locked by the
	// caller.
	consumeHolder = fmt.Sprintf(spendUse, ``)
	// recordOnConsumed records a use made with an old secret on its own
	// row, which keeps its uses and version.
	recordOnConsumed = recordUsage + ` RETURNING ` + columns
)

// Store is a store.Store and store.ChangeFeed backed by PostgreSQL.
type Store struct {
	pool        *pgxpool.Pool
	feedConfig  *pgx.ConnConfig
	feedOptions FeedOptions
	feed        feedState
}

// DefaultMaxConns is the pool's size when Options.MaxConns is 0. With the
// feed's own connection a node holds at most DefaultMaxConns+1.
const DefaultMaxConns = 4

// Options open a Store.
type Options struct {
	// DSN is the database for lookups and writes: a postgres:// URL or
	// key=value string, as libpq takes. It may point at a pooler such as
	// PgBouncer in transaction mode (then set QueryExecMode to
	// pgx.QueryExecModeExec or SimpleProtocol).
	DSN string
	// FeedDSN is where the change feed connects; it needs a session of its
	// own (LISTEN), so not through a pooler in transaction mode. Default
	// DSN.
	FeedDSN string
	// MaxConns bounds the pool (the feed's connection comes on top).
	// Default DefaultMaxConns.
	MaxConns int32
	// QueryExecMode is how the pool sends statements; the zero value keeps
	// pgx's default (prepared statements, cached per connection).
	QueryExecMode pgx.QueryExecMode
	// Feed tunes the change feed; zero values mean FeedFor(2s).
	Feed FeedOptions
}

// queryExecModes are the names of pgx's ways of sending statements, as a
// config spells them.
var queryExecModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

// ParseQueryExecMode reads a query_exec_mode name: cache_statement (pgx's
// default, prepared statements), cache_describe, describe_exec, exec or
// simple_protocol. exec and simple_protocol prepare nothing that outlives
// a transaction, as PgBouncer in transaction mode needs.
func ParseQueryExecMode(name string) (pgx.QueryExecMode, error) {
	mode, ok := queryExecModes[name]
	if !ok {
		return 0, fmt.Errorf("query_exec_mode %q: must be one of cache_statement, cache_describe, describe_exec, exec, simple_protocol", name)
	}
	return mode, nil
}

// Open connects to the database at dsn with default options; see OpenWith.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenWith(ctx, Options{DSN: dsn})
}

// OpenWith connects and brings the tokengate tables up to date. Tables go
// into the first schema of the connection's search_path. The pool opens
// connections as calls need them, up to MaxConns, and closes idle ones.
func OpenWith(ctx context.Context, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	cfg.MaxConns = cmp.Or(o.MaxConns, DefaultMaxConns)
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = time.Minute
	if o.QueryExecMode != 0 {
		cfg.ConnConfig.DefaultQueryExecMode = o.QueryExecMode
	}
	feedConfig := cfg.ConnConfig.Copy()
	if o.FeedDSN != "" {
		if feedConfig, err = pgx.ParseConfig(o.FeedDSN); err != nil {
			return nil, fmt.Errorf("connecting the change feed to postgres: %w", err)
		}
	}
	defaults := FeedFor(2 * time.Second)
	o.Feed.Heartbeat = cmp.Or(o.Feed.Heartbeat, defaults.Heartbeat)
	if o.Feed.Poll && o.FeedDSN != "" {
		return nil, fmt.Errorf("a polling change feed reads through the pool: feed_dsn has no use")
	}
	o.Feed.Deadline = cmp.Or(o.Feed.Deadline, defaults.Deadline)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	// The pool connects lazily; ping so a wrong address or password is
	// reported as such rather than as a failed migration.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrating schema: %w", err)
	}
	st := &Store{pool: pool, feedConfig: feedConfig, feedOptions: o.Feed}
	st.feed.set(false)
	return st, nil
}

func (s *Store) Create(ctx context.Context, t *store.Token) error {
	_, err := s.pool.Exec(ctx, insertToken, tokenArgs(t)...)
	return storeErr(err, "creating token "+t.ID)
}

func (s *Store) Get(ctx context.Context, id string) (*store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM tokengate_tokens WHERE id = $1`, id))
	return t, storeErr(err, "loading token "+id)
}

func (s *Store) GetByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM tokengate_tokens WHERE hash = $1`, hash))
	return t, storeErr(err, "looking up token by hash")
}

func (s *Store) Rekey(ctx context.Context, oldHash, newHash []byte) (*store.Token, error) {
	// One statement: the row lock taken by UPDATE makes a concurrent Rekey
	// of the same hash find no row once this one commits, and the unique
	// index on hash refuses a newHash another token holds.
	t, err := scanToken(s.pool.QueryRow(ctx, `WITH changed AS (
		UPDATE tokengate_tokens SET hash = $2, version = version + 1
		WHERE hash = $1 RETURNING `+columns+`
	) `+announced, oldHash, newHash))
	return t, storeErr(err, "re-keying token")
}

func (s *Store) List(ctx context.Context, f store.Filter) ([]*store.Token, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+columns+` FROM tokengate_tokens
		WHERE ($1::text = '' OR owner = $1) AND ($2::text = '' OR $2 = ANY (services))
		ORDER BY created_at NULLS FIRST, id`, f.Owner, f.Service)
	tokens, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Token, error) {
		return scanToken(row)
	})
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return tokens, nil
}

func (s *Store) Update(ctx context.Context, id string, change func(*store.Token) error) (*store.Token, error) {
	var t *store.Token
	err := s.inTx(ctx, "updating token "+id, func(tx pgx.Tx) error {
		var err error
		t, err = update(ctx, tx, id, change)
		return err
	})
	return t, err
}

func (s *Store) Rotate(ctx context.Context, oldID string, next *store.Token, change func(*store.Token) error) (*store.Token, error) {
	var old *store.Token
	err := s.inTx(ctx, "rotating token "+oldID, func(tx pgx.Tx) error {
		var err error
		if old, err = update(ctx, tx, oldID, change); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, insertToken, tokenArgs(next)...)
		return storeErr(err, "creating token "+next.ID)
	})
	return old, err
}

func (s *Store) ConsumeUse(ctx context.Context, id string, u store.Usage) (*store.Token, error) {
	doing := "consuming a use of token " + id
	t, err := scanToken(s.pool.QueryRow(ctx, consumeUnrotated, id, nullable(u.At), u.IP, u.Scope))
	if !errors.Is(err, pgx.ErrNoRows) {
		return t, storeErr(err, doing)
	}
	// Nothing changed: the token is missing, used up or rotated. Walk its
	// rotation chain, locking each row from the oldest to the newest (the
	// one order every caller takes, so walks cannot deadlock), and spend
	// the use on the newest, which holds the chain's budget.
	err = s.inTx(ctx, doing, func(tx pgx.Tx) error {
		var next string
		if err := tx.QueryRow(ctx, lockSuccessor, id).Scan(&next); err != nil {
			return storeErr(err, doing)
		}
		holder := id
		for hops := 0; next != ""; hops++ {
			if hops == maxChain {
				return fmt.Errorf("%s: rotation chain longer than %d tokens", doing, maxChain)
			}
			holder = next
			if err := tx.QueryRow(ctx, lockSuccessor, holder).Scan(&next); err != nil {
				return fmt.Errorf("%s: it was rotated to %s, which cannot be read: %w", doing, holder, err)
			}
		}
		t, err = scanToken(tx.QueryRow(ctx, consumeHolder, holder, nullable(u.At), u.IP, u.Scope))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrUsesExhausted
		case err != nil:
			return fmt.Errorf("%s: %w", doing, err)
		case holder == id:
			return nil
		}
		t, err = scanToken(tx.QueryRow(ctx, recordOnConsumed, id, nullable(u.At), u.IP, u.Scope))
		return storeErr(err, doing)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// UpdateChain finds the first token of id's chain without locks (where a
// token came from never changes), then locks and changes the chain from
// the oldest to the newest, the order ConsumeUse takes, so the two cannot
// deadlock. A Rotate holds the lock of the token it rotates until it
// commits: the walk either waits for it and then reads the new rotated_to
// (PostgreSQL re-reads a row a FOR UPDATE waited for), or takes the lock
// first, and the rotation then sees the changed record.
func (s *Store) UpdateChain(ctx context.Context, id string, change func(*store.Token) (bool, error)) ([]*store.Token, error) {
	doing := "updating the rotation chain of token " + id
	var changed []*store.Token
	err := s.inTx(ctx, doing, func(tx pgx.Tx) error {
		changed = nil
		first := id
		for hops := 0; ; hops++ {
			if hops == maxChain {
				return fmt.Errorf("%s: rotation chain longer than %d tokens", doing, maxChain)
			}
			var from string
			if err := tx.QueryRow(ctx, predecessor, first).Scan(&from); err != nil {
				return storeErr(err, doing)
			}
			if from == "" {
				break
			}
			first = from
		}
		for next, hops := first, 0; next != ""; hops++ {
			if hops == maxChain {
				return fmt.Errorf("%s: rotation chain longer than %d tokens", doing, maxChain)
			}
			t, err := scanToken(tx.QueryRow(ctx, selectForUpdate, next))
			if err != nil {
				return storeErr(err, doing)
			}
			next = t.RotatedTo
			ok, err := change(t)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			t.Version++
			if t, err = scanToken(tx.QueryRow(ctx, updateToken, tokenArgs(t)...)); err != nil {
				return storeErr(err, doing)
			}
			changed = append(changed, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// MarkUsed inserts key, or takes over its record when that has expired,
// in one statement: the primary key makes two nodes' concurrent inserts
// of one key end with one winner. Expired records are deleted in the same
// transaction, a few at a time.
func (s *Store) MarkUsed(ctx context.Context, key []byte, expires, now time.Time) error {
	return s.inTx(ctx, "recording a used credential", func(tx pgx.Tx) error {
		var won bool
		err := tx.QueryRow(ctx, `INSERT INTO tokengate_used_credentials (hash, expires) VALUES ($1, $2)
			ON CONFLICT (hash) DO UPDATE SET expires = EXCLUDED.expires
			WHERE tokengate_used_credentials.expires <= $3
			RETURNING true`, key, expires, now).Scan(&won)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrConflict
		}
		if err != nil {
			return fmt.Errorf("recording a used credential: %w", err)
		}
		_, err = tx.Exec(ctx, `DELETE FROM tokengate_used_credentials WHERE hash IN (
			SELECT hash FROM tokengate_used_credentials WHERE expires <= $1 LIMIT 16)`, now)
		if err != nil {
			return fmt.Errorf("dropping expired used credentials: %w", err)
		}
		return nil
	})
}

// RecordUsage sends the whole batch as one pipelined batch, which
// PostgreSQL runs as one implicit transaction. It does not notify: usage
// statistics never change a decision.
func (s *Store) RecordUsage(ctx context.Context, batch []store.Usage) error {
	if len(batch) == 0 {
		return nil
	}
	// Locking rows in id order keeps two nodes flushing overlapping
	// batches from deadlocking. The sort is stable so that observations of
	// one token apply in the order they were made.
	sorted := slices.Clone(batch)
	slices.SortStableFunc(sorted, func(a, b store.Usage) int { return strings.Compare(a.TokenID, b.TokenID) })
	var b pgx.Batch
	for _, u := range sorted {
		b.Queue(recordUsage, u.TokenID, nullable(u.At), u.IP, u.Scope)
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("recording usage of %d tokens: %w", len(batch), err)
	}
	return nil
}

// Close closes the connection pool. A running Watch keeps its own
// connection until its context ends.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// inTx runs fn in a transaction and commits if fn succeeds. Errors from fn
// come back unwrapped, so a change func's own error reaches the caller as
// the Store interface promises.
func (s *Store) inTx(ctx context.Context, doing string, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	defer tx.Rollback(ctx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	return nil
}

// update applies change to the token under a row lock, so no other update
// on any node interleaves, and announces the change on commit. The record
// returned is the one stored, times truncated to PostgreSQL's microseconds.
func update(ctx context.Context, tx pgx.Tx, id string, change func(*store.Token) error) (*store.Token, error) {
	t, err := scanToken(tx.QueryRow(ctx, selectForUpdate, id))
	if err != nil {
		return nil, storeErr(err, "loading token "+id)
	}
	if err := change(t); err != nil {
		return nil, err
	}
	t.Version++
	t, err = scanToken(tx.QueryRow(ctx, updateToken, tokenArgs(t)...))
	return t, storeErr(err, "storing token "+id)
}

// tokenArgs returns t's fields in the order of columns.
func tokenArgs(t *store.Token) []any {
	return []any{
		t.ID, t.Hash, t.Owner, t.Purpose, notNull(t.Scopes), notNull(t.Services), notNull(t.CIDRs),
		nullable(t.NotBefore), nullable(t.ExpiresAt), t.MaxUses, t.Uses, nullable(t.CreatedAt),
		t.CreatedBy, t.ApprovedBy, t.RotatedFrom, t.RotatedTo, nullable(t.GraceUntil),
		nullable(t.RevokedAt), t.RevokedBy, t.RevokeReason, nullable(t.LastUsedAt), t.LastUsedIP,
		notNull(t.UsedScopes), int64(t.Version), t.HeldBy, notNull(t.HolderGroups),
		nullable(t.ExposedAt), t.ExposureSource, t.ExposureURL,
		t.RateLimit.Requests, t.RateLimit.Window.Milliseconds(), t.RateKey,
	}
}

// scanToken reads one row of columns.
func scanToken(row pgx.Row) (*store.Token, error) {
	var (
		t                                 store.Token
		notBefore, expiresAt, createdAt   pgtype.Timestamptz
		graceUntil, revokedAt, lastUsedAt pgtype.Timestamptz
		exposedAt                         pgtype.Timestamptz
		version, rateWindowMS             int64
	)
	err := row.Scan(
		&t.ID, &t.Hash, &t.Owner, &t.Purpose, &t.Scopes, &t.Services, &t.CIDRs,
		&notBefore, &expiresAt, &t.MaxUses, &t.Uses, &createdAt,
		&t.CreatedBy, &t.ApprovedBy, &t.RotatedFrom, &t.RotatedTo, &graceUntil,
		&revokedAt, &t.RevokedBy, &t.RevokeReason, &lastUsedAt, &t.LastUsedIP,
		&t.UsedScopes, &version, &t.HeldBy, &t.HolderGroups,
		&exposedAt, &t.ExposureSource, &t.ExposureURL,
		&t.RateLimit.Requests, &rateWindowMS, &t.RateKey,
	)
	if err != nil {
		return nil, err
	}
	t.NotBefore, t.ExpiresAt, t.CreatedAt = utc(notBefore), utc(expiresAt), utc(createdAt)
	t.GraceUntil, t.RevokedAt, t.LastUsedAt = utc(graceUntil), utc(revokedAt), utc(lastUsedAt)
	t.ExposedAt = utc(exposedAt)
	t.Version = uint64(version)
	t.RateLimit.Window = time.Duration(rateWindowMS) * time.Millisecond
	return &t, nil
}

// nullable stores a zero time as NULL, so "never" reads as NULL to anyone
// querying the table.
func nullable(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// utc reads a time back in UTC (pgx returns local time), NULL as zero.
func utc(ts pgtype.Timestamptz) time.Time {
	if !ts.Valid {
		return time.Time{}
	}
	return ts.Time.UTC()
}

// notNull turns a nil slice, which pgx sends as NULL, into an empty array.
func notNull(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// storeErr maps PostgreSQL outcomes to the store's errors, so callers can
// tell a miss or a clash from a failure without knowing the backend. Other
// errors get what was being done as context.
func storeErr(err error, doing string) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return store.ErrConflict
	}
	return fmt.Errorf("%s: %w", doing, err)
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

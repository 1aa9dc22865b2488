package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokengate/caddy-tokengate/store"
)

// Reconnect delays after the feed's connection fails: doubling from
// minBackoff up to maxBackoff, so a database restart is picked up quickly
// but a long outage does not become a connection storm.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Feed retention: rows of tokengate_changes older than feedRetention are
// deleted (by whichever node gets there first, at most once per
// pruneEvery per node). A node whose last confirmation is older than half
// of it may have missed rows that are gone, and drops its caches instead
// of catching up.
const (
	feedRetention = time.Hour
	pruneEvery    = time.Minute
)

// readChanges reads, in one statement and so in one snapshot, the
// snapshot itself and every change after the cursor: rows numbered past
// the highest seq read so far ($1), and rows of every transaction the
// previous read's snapshot counted as running: those it listed ($2, its
// xip) and those with an xid at or past its xmax ($3), which a snapshot
// counts as running without listing them. A transaction takes its seq
// before it commits, so it can commit after a later seq was read; it was
// then running at the previous read, and is found by its xid. A row the
// previous snapshot did not count as running was visible to it, and read
// then.
const readChanges = `SELECT pg_current_snapshot()::text, c.seq, c.token_id
	FROM (SELECT 1) AS one
	LEFT JOIN tokengate_changes c
		ON c.seq > $1 OR c.xid = ANY ($2::text[]::xid8[]) OR c.xid >= $3::text::xid8
	ORDER BY c.seq`

// startChanges places a new cursor at the end of the feed, in one
// snapshot: the node starts with empty caches (Reset), and rows of the
// transactions still running are read by the next readChanges.
const startChanges = `SELECT pg_current_snapshot()::text, max(seq), NULL::text FROM tokengate_changes`

// FeedOptions tune how the change feed confirms that it is current.
type FeedOptions struct {
	// Heartbeat is how often the feed reads the table when nothing woke
	// it; each read that returns confirms the node is current as of the
	// moment it was sent. Default 500ms.
	Heartbeat time.Duration
	// Deadline bounds each read and each connection attempt: a read that
	// does not answer in time (a relay that went silent without closing
	// the connection) ends the connection, and the feed connects again.
	// Default 1s.
	Deadline time.Duration
	// Poll reads the feed through the pool every Heartbeat instead of
	// holding a connection of its own in LISTEN: a node then needs no
	// connection beyond its pool, and the pool may go through PgBouncer
	// in transaction mode (the cursor lives in the node, not in a
	// session). The price: a change reaches the node up to Heartbeat
	// later.
	Poll bool
}

// FeedFor returns the options that keep a node within bound: a heartbeat
// four times per bound and a deadline of half of it, so a healthy feed
// confirms several times per bound and a dead connection is replaced
// before the bound runs out.
func FeedFor(bound time.Duration) FeedOptions {
	return FeedOptions{Heartbeat: bound / 4, Deadline: bound / 2}
}

// cursor is how far a follower has read the feed.
type cursor struct {
	started bool
	seq     int64
	// running and xmax are the transactions in progress at the last
	// read's snapshot, listed and from xmax on; their rows may yet appear
	// below seq.
	running []string
	xmax    string
	// confirmed is the local time of the last read that returned.
	confirmed time.Time
	// pruned is when this follower last pruned the feed.
	pruned time.Time
}

// Follow implements store.ChangeFeed. It keeps a connection of its own
// (not one of the pool: LISTEN is session state, and a pooler in
// transaction mode would not keep it) in LISTEN, which only wakes it: what
// changed is read from tokengate_changes, after the cursor, on every
// wake-up and every Heartbeat. Each read that returns tells f that the
// node is current as of when it was sent. After a lost connection the
// cursor carries over, so the node reads what it missed and keeps its
// caches; only the first read (the node has no cursor yet) and a gap
// longer than the feed keeps rows call Reset.
func (s *Store) Follow(ctx context.Context, f store.Follower) {
	var c cursor
	if s.feedOptions.Poll {
		s.poll(ctx, &c, f)
		return
	}
	delay := minBackoff
	for {
		if s.follow(ctx, &c, f) {
			delay = minBackoff
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxBackoff)
	}
}

// follow holds one feed connection until it fails or ctx is done, and
// reports whether it read the feed at least once.
func (s *Store) follow(ctx context.Context, c *cursor, f store.Follower) bool {
	o := s.feedOptions
	connectCtx, cancel := context.WithTimeout(ctx, o.Deadline)
	conn, err := pgx.ConnectConfig(connectCtx, s.feedConfig.Copy())
	cancel()
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	if err := withDeadline(ctx, o.Deadline, func(ctx context.Context) error {
		_, err := conn.Exec(ctx, "LISTEN "+channel)
		return err
	}); err != nil {
		return false
	}
	s.feed.set(true)
	defer s.feed.set(false)
	read := false
	for {
		if err := s.catchUp(ctx, conn, c, f); err != nil {
			return read
		}
		read = true
		// Wait for a wake-up or the next heartbeat. A timeout here is
		// the heartbeat, not a failure (pgx keeps the connection); any
		// other error ends it.
		waitCtx, cancel := context.WithTimeout(ctx, o.Heartbeat)
		_, err := conn.WaitForNotification(waitCtx)
		cancel()
		if err != nil && (ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded)) {
			return read
		}
		drainNotifications(conn)
	}
}

// drainNotifications takes the wake-ups pgx has already received (during
// the last read, say) without waiting for more: the read about to be sent
// covers every change they announce, so one read answers them all instead
// of one read each.
func drainNotifications(conn *pgx.Conn) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		if _, err := conn.WaitForNotification(done); err != nil {
			return
		}
	}
}

// poll reads the feed through the pool every Heartbeat until ctx is done.
// A failed read is retried at the next tick; confirmations stop meanwhile.
func (s *Store) poll(ctx context.Context, c *cursor, f store.Follower) {
	tick := time.NewTicker(s.feedOptions.Heartbeat)
	defer tick.Stop()
	for {
		live := s.catchUp(ctx, s.pool, c, f) == nil
		s.feed.set(live)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// querier is what the feed reads through: its own connection, or the pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// catchUp reads the changes after c, hands them to f and confirms.
func (s *Store) catchUp(ctx context.Context, conn querier, c *cursor, f store.Follower) error {
	asOf := time.Now()
	var (
		snapshot string
		ids      []string
		maxSeq   = c.seq
	)
	query, args := readChanges, []any{c.seq, c.running, c.xmax}
	if !c.started {
		query, args = startChanges, nil
	}
	err := withDeadline(ctx, s.feedOptions.Deadline, func(ctx context.Context) error {
		rows, err := conn.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				seq *int64
				id  *string
			)
			if err := rows.Scan(&snapshot, &seq, &id); err != nil {
				return err
			}
			if seq != nil {
				maxSeq = max(maxSeq, *seq)
			}
			if id != nil {
				ids = append(ids, *id)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	running, xmax, err := runningTransactions(snapshot)
	if err != nil {
		return err
	}
	lost := !c.started || asOf.Sub(c.confirmed) > feedRetention/2
	c.started, c.seq, c.running, c.xmax, c.confirmed = true, maxSeq, running, xmax, asOf
	if lost {
		// Nothing to catch up from: the caches may hold anything.
		f.Reset()
	} else {
		for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
			f.Changed(id)
		}
	}
	f.CaughtUp(asOf)
	s.maybePrune(ctx, conn, c)
	return nil
}

// runningTransactions reads the transactions a pg_snapshot in its text
// form, xmin:xmax:xip,xip,..., counts as running: those it lists, and
// every one from xmax on.
func runningTransactions(snapshot string) (listed []string, xmax string, err error) {
	parts := strings.Split(snapshot, ":")
	if len(parts) != 3 {
		return nil, "", fmt.Errorf("reading the change feed: unexpected snapshot %q", snapshot)
	}
	if parts[2] == "" {
		return []string{}, parts[1], nil
	}
	return strings.Split(parts[2], ","), parts[1], nil
}

// maybePrune deletes feed rows past feedRetention, at most once per
// pruneEvery on this node. A failure is left for the next time.
func (s *Store) maybePrune(ctx context.Context, conn querier, c *cursor) {
	now := time.Now()
	if now.Sub(c.pruned) < pruneEvery {
		return
	}
	c.pruned = now
	_ = withDeadline(ctx, s.feedOptions.Deadline, func(ctx context.Context) error {
		_, err := conn.Exec(ctx, `DELETE FROM tokengate_changes WHERE changed_at < now() - $1::interval`,
			feedRetention.String())
		return err
	})
}

func withDeadline(ctx context.Context, d time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return fn(ctx)
}

// Watch implements store.Notifier on top of Follow, for callers that need
// no confirmations.
func (s *Store) Watch(ctx context.Context, changed func(tokenID string), reset func()) {
	s.Follow(ctx, watchFollower{changed: changed, reset: reset})
}

type watchFollower struct {
	changed func(string)
	reset   func()
}

func (w watchFollower) Changed(id string)  { w.changed(id) }
func (w watchFollower) Reset()             { w.reset() }
func (w watchFollower) CaughtUp(time.Time) {}

// FeedLive implements store.FeedReporter: live while the feed's
// connection is up.
func (s *Store) FeedLive() (live bool, since time.Time) { return s.feed.get() }

// feedState is whether the feed's connection is up, and since when.
type feedState struct {
	mu    sync.Mutex
	live  bool
	since time.Time
}

func (f *feedState) set(live bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live, f.since = live, time.Now()
}

func (f *feedState) get() (bool, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live, f.since
}

var (
	_ store.FeedReporter = (*Store)(nil)
	_ store.ChangeFeed   = (*Store)(nil)
)

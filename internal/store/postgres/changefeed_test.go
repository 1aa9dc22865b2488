package postgres

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/freshness"
	"github.com/tokengate/caddy-tokengate/internal/testutil/tcprelay"
	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/store/storetest"
)

// follower records what a feed reports and keeps a freshness tracker
// with the default 2s bound, as a gateway node does.
type follower struct {
	tracker *freshness.Tracker
	mu      sync.Mutex
	changed map[string]int
	resets  int
}

func (f *follower) Changed(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed[id]++
}

func (f *follower) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets++
}

func (f *follower) CaughtUp(asOf time.Time) { f.tracker.Confirm(asOf) }

func (f *follower) state(id string) (changed, resets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed[id], f.resets
}

// follow runs s.Follow until the test ends and returns once the feed has
// confirmed that it is current.
func follow(t *testing.T, s *Store) *follower {
	t.Helper()
	f := &follower{tracker: newTracker(), changed: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Follow(ctx, f)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, 10*time.Second, "the feed confirms", f.tracker.Fresh)
	return f
}

func newTracker() *freshness.Tracker { return freshness.New(2*time.Second, time.Now) }

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// viaRelay returns dsn with its host replaced by a relay to it.
func viaRelay(t *testing.T, dsn string) (string, *tcprelay.Relay) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	r := tcprelay.Start(t, u.Host)
	u.Host = r.Addr()
	return u.String(), r
}

func revoke(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.Update(context.Background(), id, func(t *store.Token) error {
		t.RevokedAt, t.RevokedBy = time.Now(), "security"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A node behind a relay that goes silent (no reset, no close) learns that
// it is behind within the 2s bound; after the relay heals it names the
// token revoked meanwhile and is current again, without dropping its
// caches. Done for a silent and for a loud (connections reset, new ones
// refused) partition, and for a silent one of a feed that polls.
func TestFeedBoundsStalenessAcrossPartitions(t *testing.T) {
	for _, c := range []struct {
		name       string
		loud, poll bool
	}{{"silent", false, false}, {"loud", true, false}, {"silent, polling", false, true}} {
		name, loud := c.name, c.loud
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := testDSN(t)
			writer := open(t, dsn)
			relayed, relay := viaRelay(t, dsn)
			node, err := OpenWith(context.Background(), Options{DSN: relayed, Feed: FeedOptions{Poll: c.poll}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { node.Close() })
			f := follow(t, node)

			tok := storetest.NewToken("alice")
			if err := writer.Create(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
			if loud {
				relay.Break()
			} else {
				relay.Silence()
			}
			cut := time.Now()
			revoke(t, writer, tok.ID)
			waitFor(t, 3*time.Second, "the node knows it is stale", func() bool { return !f.tracker.Fresh() })
			staleAfter := time.Since(cut)
			if staleAfter > 2*time.Second+250*time.Millisecond {
				t.Errorf("stale only %s after the cut, bound 2s", staleAfter)
			}
			if n, _ := f.state(tok.ID); n != 0 {
				t.Fatalf("the revoke reached the node through a %s relay", name)
			}
			_, resetsBefore := f.state("")

			relay.Heal()
			healed := time.Now()
			waitFor(t, 10*time.Second, "the revoke is named after healing", func() bool {
				n, _ := f.state(tok.ID)
				return n > 0
			})
			waitFor(t, 5*time.Second, "fresh again", f.tracker.Fresh)
			t.Logf("%s partition: stale %s after the cut; revoke named and fresh again %s after healing",
				name, staleAfter.Round(time.Millisecond), time.Since(healed).Round(time.Millisecond))
			if _, resets := f.state(""); resets != resetsBefore {
				t.Errorf("the node dropped its caches (%d resets) instead of catching up", resets-resetsBefore)
			}
		})
	}
}

// Changes committed while the feed's connection is gone (its backend
// terminated, as a database restart does) are read back from the feed
// on reconnecting, in any order of commit, with no reset.
func TestFeedCatchesUpAfterLostConnection(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	writer := open(t, dsn)
	node := open(t, dsn)
	f := follow(t, node)
	ctx := context.Background()
	toks := make([]*store.Token, 5)
	for i := range toks {
		toks[i] = storetest.NewToken("alice")
		if err := writer.Create(ctx, toks[i]); err != nil {
			t.Fatal(err)
		}
	}
	_, resetsBefore := f.state("")

	// One change takes its number first and commits last: the feed must
	// not step past it.
	tx, err := writer.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE tokengate_tokens SET revoked_by = 'slow' WHERE id = $1", toks[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = current_setting('application_name') AND query ILIKE 'LISTEN%' OR query LIKE 'SELECT pg_current_snapshot%'`); err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks[1:] {
		revoke(t, writer, tok.ID)
	}
	waitFor(t, 10*time.Second, "the later changes are named", func() bool {
		for _, tok := range toks[1:] {
			if n, _ := f.state(tok.ID); n == 0 {
				return false
			}
		}
		return true
	})
	if n, _ := f.state(toks[0].ID); n != 0 {
		t.Fatal("a change not yet committed was named")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the change committed last is named", func() bool {
		n, _ := f.state(toks[0].ID)
		return n > 0
	})
	if _, resets := f.state(""); resets != resetsBefore {
		t.Errorf("the node dropped its caches (%d resets) instead of catching up", resets-resetsBefore)
	}
}

// A use of a use-limited token is no feed event: it sends no NOTIFY and
// writes no row, so spending uses costs every node nothing.
func TestUsesAreNoFeedEvents(t *testing.T) {
	t.Parallel()
	s := open(t, testDSN(t))
	ctx := context.Background()
	tok := storetest.NewToken("alice")
	tok.MaxUses = 10
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.ConsumeUse(ctx, tok.ID, store.Usage{TokenID: tok.ID, At: time.Now(), Scope: "svc:read"}); err != nil {
			t.Fatal(err)
		}
	}
	var rows int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM tokengate_changes WHERE token_id = $1", tok.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("3 uses wrote %d feed rows, want 0", rows)
	}
	revoke(t, s, tok.ID)
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM tokengate_changes WHERE token_id = $1", tok.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("a revoke wrote %d feed rows, want 1", rows)
	}
}

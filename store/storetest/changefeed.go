package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// feedRecorder is a store.Follower that remembers what it was told.
type feedRecorder struct {
	mu       sync.Mutex
	changed  map[string]int
	resets   int
	caughtUp time.Time
}

func (r *feedRecorder) Changed(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed[id]++
}

func (r *feedRecorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resets++
}

func (r *feedRecorder) CaughtUp(asOf time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if asOf.Before(r.caughtUp) {
		panic("CaughtUp went backwards")
	}
	r.caughtUp = asOf
}

// coveredAfter reports whether the feed has confirmed, as of a time after
// t, and has named id (or can never be behind); an empty id asks only for
// the confirmation.
func (r *feedRecorder) coveredAfter(t time.Time, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.caughtUp.After(t) && (id == "" || r.changed[id] > 0 || r.caughtUp.Equal(store.Forever))
}

// testFeedReportsChanges: a backend that implements store.ChangeFeed
// confirms that it is current, and a revoke made after that is named (or
// the backend says it can never be behind) in a confirmation sent after
// the revoke returned.
func testFeedReportsChanges(t *testing.T, s store.Backend) {
	feed, ok := s.(store.ChangeFeed)
	if !ok {
		t.Skip("the backend has no change feed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	rec := &feedRecorder{changed: map[string]int{}}
	go func() {
		defer close(done)
		feed.Follow(ctx, rec)
	}()
	defer func() {
		cancel()
		<-done
	}()
	// The first confirmation may come with a Reset instead of names.
	for started := time.Now(); !rec.coveredAfter(time.Time{}, ""); {
		if time.Since(started) > 10*time.Second {
			t.Fatal("the feed never confirmed that it is current")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tok := NewToken("alice")
	mustCreate(t, s, tok)
	if _, err := s.Update(context.Background(), tok.ID, func(t *store.Token) error {
		t.RevokedAt, t.RevokedBy = time.Now(), "security"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for !rec.coveredAfter(revoked, tok.ID) {
		if time.Now().After(deadline) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			t.Fatalf("10s after a revoke the feed confirmed up to %s and named the token %d times", rec.caughtUp, rec.changed[tok.ID])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

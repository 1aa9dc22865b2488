package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// testMarkUsed: a one-time credential is accepted once until its record
// expires, then may be recorded again; another credential is apart.
func testMarkUsed(t *testing.T, s store.Backend) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	key := sha256.Sum256([]byte(token.NewSecret()))
	other := sha256.Sum256([]byte(token.NewSecret()))
	expires := now.Add(10 * time.Minute)
	if err := s.MarkUsed(ctx, key[:], expires, now); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := s.MarkUsed(ctx, key[:], expires, now.Add(time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second use before expiry: %v, want ErrConflict", err)
	}
	if err := s.MarkUsed(ctx, key[:], expires.Add(time.Hour), expires.Add(-time.Microsecond)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("use just before expiry: %v, want ErrConflict", err)
	}
	if err := s.MarkUsed(ctx, other[:], expires, now); err != nil {
		t.Fatalf("another credential: %v", err)
	}
	if err := s.MarkUsed(ctx, key[:], expires.Add(time.Hour), expires); err != nil {
		t.Fatalf("use once the record expired: %v", err)
	}
	if err := s.MarkUsed(ctx, key[:], expires.Add(2*time.Hour), expires.Add(time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the renewed record does not hold: %v", err)
	}
}

// testMarkUsedAtomic: of many concurrent uses of one credential, exactly
// one succeeds.
func testMarkUsedAtomic(t *testing.T, s store.Backend) {
	ctx := context.Background()
	now := time.Now().UTC()
	for range 5 {
		key := sha256.Sum256([]byte(token.NewSecret()))
		won := race(t, 8, store.ErrConflict, func() error {
			return s.MarkUsed(ctx, key[:], now.Add(time.Minute), now)
		})
		if won != 1 {
			t.Fatalf("%d of 8 concurrent uses of one credential succeeded, want 1", won)
		}
	}
}

// race runs f from n goroutines at once and returns how many calls
// succeeded; a call that fails with anything but loser (the error the
// contract gives the ones that lose) fails the test.
func race(t *testing.T, n int, loser error, f func() error) int {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, loser):
			t.Errorf("a losing call: %v, want %v", err, loser)
		}
	}
	return won
}

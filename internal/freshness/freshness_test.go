package freshness

import (
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	tr := New(2*time.Second, func() time.Time { return now })
	if tr.Fresh() {
		t.Fatal("fresh before any confirmation")
	}
	tr.Confirm(now.Add(-time.Second))
	if !tr.Fresh() || tr.Lag() != time.Second {
		t.Fatalf("confirmed 1s ago: fresh %v lag %s, want fresh with lag 1s", tr.Fresh(), tr.Lag())
	}
	tr.Confirm(now.Add(-3 * time.Second)) // a late answer to an older read
	if tr.Lag() != time.Second {
		t.Fatalf("an older confirmation moved the lag to %s", tr.Lag())
	}
	now = now.Add(1001 * time.Millisecond)
	if tr.Fresh() {
		t.Fatalf("lag %s past the 2s bound, still fresh", tr.Lag())
	}
	tr.Confirm(now)
	tr.Lost()
	if tr.Fresh() {
		t.Fatal("fresh after Lost")
	}
	// A store no other process writes confirms for ever; far past the
	// range of UnixNano.
	tr.Confirm(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	now = now.Add(100 * 365 * 24 * time.Hour)
	if !tr.Fresh() || tr.Lag() != 0 {
		t.Fatalf("confirmed for ever: fresh %v lag %s", tr.Fresh(), tr.Lag())
	}
}

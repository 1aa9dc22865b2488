package console

import (
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

func TestRecentHistoryCountsRevocationsAndExposures(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	held := []*store.Token{
		{ID: "leaked", RevokedAt: now.Add(-time.Hour), RevokeReason: "leaked", ExposedAt: now.Add(-time.Hour)},
		{ID: "chain", RevokedAt: now.Add(-time.Hour), RevokeReason: "leaked: revoked with leaked, of its rotation chain"},
		{ID: "old", RevokedAt: now.Add(-100 * 24 * time.Hour), ExposedAt: now.Add(-100 * 24 * time.Hour)},
		{ID: "live"},
	}
	h := RecentHistory("carol", "", nil, held, now)
	if h.Revoked != 2 || h.Exposures != 1 {
		t.Fatalf("revoked %d, exposures %d; want 2 and 1 (the chain member was revoked, not exposed; the old one is past 90 days)", h.Revoked, h.Exposures)
	}
}

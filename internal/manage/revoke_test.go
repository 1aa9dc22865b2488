package manage

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/store"
)

// A chain left half revoked (the old id revoked, its successor live, as a
// revoke did before it stopped whole chains) is stopped by revoking the
// old id again: the live successor is revoked, and the line names it.
func TestRevokingAHalfRevokedChainStopsItsLiveSecrets(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, first, err := f.svc.Issue(ctx, local, lifecycle.Spec{Owner: "alice", Purpose: "dashboards", Scopes: []string{"billing:read"}, Services: []string{"billing"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := f.svc.Rotate(ctx, local, first.ID, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Update(ctx, first.ID, func(t *store.Token) error {
		t.RevokedAt, t.RevokedBy, t.RevokeReason = f.now, "local-operator", "before chains were revoked whole"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.lines()

	if _, err := f.svc.Revoke(ctx, local, first.ID, "alert 7"); err != nil {
		t.Fatalf("revoking the half-revoked chain: %v", err)
	}
	if got, _ := f.store.Get(ctx, second.ID); got.RevokedAt.IsZero() {
		t.Fatal("the successor is still live")
	}
	var named map[string]any
	for _, l := range f.lines() {
		if l["msg"] == "token.revoked" && l["token_id"] == first.ID {
			named = l
		}
	}
	if got := anyStrings(named["revoked_ids"]); !slices.Equal(got, []string{second.ID}) {
		t.Fatalf("revoked_ids %v, want [%s]", got, second.ID)
	}
	_, err = f.svc.Revoke(ctx, local, second.ID, "again")
	wantKind(t, err, lifecycle.KindConflict, "already_revoked")
}

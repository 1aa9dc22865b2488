package report

import (
	"slices"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

func TestBuild(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tok := func(id string, f func(*store.Token)) *store.Token {
		t := &store.Token{ID: id, Owner: "o", Purpose: "p", Scopes: []string{"svc:read"}, Services: []string{"svc"},
			CIDRs: []string{"10.0.0.0/8"}, NotBefore: now.Add(-day), ExpiresAt: now.Add(20 * day), CreatedAt: now.Add(-day),
			LastUsedAt: now.Add(-time.Hour), UsedScopes: []string{"svc:read"}}
		f(t)
		return t
	}
	tokens := []*store.Token{
		tok("healthy", func(*store.Token) {}),
		tok("expiring", func(t *store.Token) { t.ExpiresAt = now.Add(3 * day) }),
		tok("never", func(t *store.Token) { t.LastUsedAt, t.UsedScopes = time.Time{}, nil }),
		tok("stale", func(t *store.Token) { t.LastUsedAt = now.Add(-31 * day) }),
		tok("open-writer", func(t *store.Token) {
			t.Scopes, t.CIDRs = []string{"svc:write"}, nil
			t.UsedScopes = []string{"svc:read"}
		}),
		tok("bound-writer", func(t *store.Token) { t.Scopes = []string{"svc:write"} }),
		tok("open-writer-v4", func(t *store.Token) { t.Scopes, t.CIDRs = []string{"svc:write"}, []string{"0.0.0.0/0"} }),
		tok("open-writer-v6", func(t *store.Token) { t.Scopes, t.CIDRs = []string{"svc:write"}, []string{"::/0"} }),
		tok("open-writer-mixed", func(t *store.Token) {
			t.Scopes, t.CIDRs = []string{"svc:write"}, []string{"10.0.0.0/8", "0.0.0.0/1"}
		}),
		tok("open-deleter", func(t *store.Token) {
			t.Scopes, t.CIDRs, t.UsedScopes = []string{"svc:delete"}, nil, []string{"svc:delete"}
		}),
		tok("long", func(t *store.Token) { t.ExpiresAt = t.NotBefore.Add(90 * day) }),
		tok("revoked", func(t *store.Token) { t.LastUsedAt = time.Time{}; t.RevokedAt = now }),
	}
	r := Build(tokens, now, DefaultUnused, func(t *store.Token) bool { return t.RevokedAt.IsZero() })
	ids := func(items []Item) []string {
		var out []string
		for _, i := range items {
			out = append(out, i.TokenID)
		}
		return out
	}
	want := map[string][]string{
		"expiring":    {"expiring"},
		"never":       {"never"},
		"unused":      {"stale"},
		"write":       {"open-writer", "open-writer-v4", "open-writer-v6", "open-writer-mixed", "open-deleter"},
		"long":        {"long"},
		"unusedScope": {"open-writer", "bound-writer", "open-writer-v4", "open-writer-v6", "open-writer-mixed"},
	}
	got := map[string][]string{
		"expiring": ids(r.ExpiringSoon), "never": ids(r.NeverUsed), "unused": ids(r.Unused),
		"write": ids(r.WriteWithoutCIDR), "long": ids(r.LongLived), "unusedScope": ids(r.UnusedScopes),
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
	if r.LiveTokens != 11 {
		t.Errorf("live tokens %d, want 11 (the revoked one is out)", r.LiveTokens)
	}
	for _, it := range r.WriteWithoutCIDR {
		want := "a CIDR wider than /8 (IPv4) or /32 (IPv6) binds nothing"
		if it.TokenID == "open-writer" || it.TokenID == "open-deleter" {
			want = ""
		}
		if it.Detail != want {
			t.Errorf("detail of %s: %q, want %q", it.TokenID, it.Detail, want)
		}
	}
	if s := r.UnusedScopes[0].Scopes; !slices.Equal(s, []string{"svc:write"}) {
		t.Errorf("unused scopes of the writer: %v", s)
	}
}

// A token whose secret leaked is revoked, so it is no live token, but the
// report lists it for 30 days with where it was found.
func TestExposedTokensAreReported(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	exposed := func(id string, ago time.Duration) *store.Token {
		return &store.Token{ID: id, Owner: "o", Purpose: "p", NotBefore: now.Add(-48 * time.Hour), ExpiresAt: now.Add(time.Hour),
			RevokedAt: now.Add(-ago), ExposedAt: now.Add(-ago), ExposureSource: "github", ExposureURL: "https://github.com/o/r/blob/x/.env"}
	}
	r := Build([]*store.Token{exposed("recent", time.Hour), exposed("old", ExposedWithin+time.Hour)}, now, DefaultUnused,
		func(t *store.Token) bool { return t.RevokedAt.IsZero() })
	if r.LiveTokens != 0 || len(r.Exposed) != 1 || r.Exposed[0].TokenID != "recent" ||
		r.Exposed[0].Detail != "found by github at https://github.com/o/r/blob/x/.env, 2026-12-07T11:00:00Z" {
		t.Fatalf("report %+v", r)
	}
}

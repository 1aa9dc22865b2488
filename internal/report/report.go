// Package report finds token hygiene problems in the inventory: tokens
// about to expire, never or no longer used, over-broad or long-lived, and
// scopes granted but never exercised (privilege creep).
package report

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/binding"
	"github.com/tokengate/caddy-tokengate/store"
)

// Thresholds of the report; the API lets callers change UnusedFor.
const (
	ExpiringWithin = 7 * 24 * time.Hour
	// ExposedWithin is how long a token whose secret leaked stays in the
	// report: long enough for its owner to replace it everywhere.
	ExposedWithin = 30 * 24 * time.Hour
	LongLived     = 30 * 24 * time.Hour
	DefaultUnused = 30 * 24 * time.Hour
)

// Item names one token in a finding.
type Item struct {
	TokenID string   `json:"token_id"`
	Owner   string   `json:"owner"`
	Purpose string   `json:"purpose"`
	Detail  string   `json:"detail,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
}

// Report is the hygiene report over live tokens (not revoked, rotated
// away, expired or used up), and the tokens whose secrets were found in
// the wild in the last ExposedWithin (revoked, but their owners have a
// secret to replace).
type Report struct {
	GeneratedAt      time.Time `json:"generated_at"`
	LiveTokens       int       `json:"live_tokens"`
	ExpiringSoon     []Item    `json:"expiring_soon"`
	NeverUsed        []Item    `json:"never_used"`
	Unused           []Item    `json:"unused"`
	WriteWithoutCIDR []Item    `json:"write_without_cidr"`
	LongLived        []Item    `json:"long_lived"`
	UnusedScopes     []Item    `json:"unused_scopes"`
	Exposed          []Item    `json:"exposed"`
}

// Build computes the report. live reports whether a token still counts.
func Build(tokens []*store.Token, now time.Time, unusedFor time.Duration, live func(*store.Token) bool) Report {
	r := Report{GeneratedAt: now, ExpiringSoon: []Item{}, NeverUsed: []Item{}, Unused: []Item{},
		WriteWithoutCIDR: []Item{}, LongLived: []Item{}, UnusedScopes: []Item{}, Exposed: []Item{}}
	for _, t := range tokens {
		if !t.ExposedAt.IsZero() && now.Sub(t.ExposedAt) <= ExposedWithin {
			r.Exposed = append(r.Exposed, Item{TokenID: t.ID, Owner: t.Owner, Purpose: t.Purpose,
				Detail: fmt.Sprintf("found by %s at %s, %s", t.ExposureSource, t.ExposureURL, t.ExposedAt.Format(time.RFC3339))})
		}
		if !live(t) {
			continue
		}
		r.LiveTokens++
		item := Item{TokenID: t.ID, Owner: t.Owner, Purpose: t.Purpose}
		if left := t.ExpiresAt.Sub(now); left <= ExpiringWithin {
			r.ExpiringSoon = append(r.ExpiringSoon, with(item, "expires "+t.ExpiresAt.Format(time.RFC3339)))
		}
		switch {
		case t.LastUsedAt.IsZero():
			r.NeverUsed = append(r.NeverUsed, with(item, "issued "+t.CreatedAt.Format(time.RFC3339)))
		case now.Sub(t.LastUsedAt) >= unusedFor:
			r.Unused = append(r.Unused, with(item, "last used "+t.LastUsedAt.Format(time.RFC3339)))
		}
		// A range as wide as 0.0.0.0/0 binds nothing, so a writer bound
		// only by such ranges is as open as one with none.
		if slices.ContainsFunc(t.Scopes, isWrite) && !binding.CIDRs(t.CIDRs) {
			it := item
			if len(t.CIDRs) > 0 {
				it = with(item, fmt.Sprintf("a CIDR wider than /%d (IPv4) or /%d (IPv6) binds nothing", binding.MinIPv4Bits, binding.MinIPv6Bits))
			}
			r.WriteWithoutCIDR = append(r.WriteWithoutCIDR, it)
		}
		if life := t.ExpiresAt.Sub(t.NotBefore); life > LongLived {
			r.LongLived = append(r.LongLived, with(item, "lifetime "+life.String()))
		}
		// A scope is exercised when a call needed exactly it: a write
		// scope only ever used for reads shows up here, as it should.
		var unused []string
		for _, s := range t.Scopes {
			if !slices.Contains(t.UsedScopes, s) {
				unused = append(unused, s)
			}
		}
		if len(unused) > 0 && !t.LastUsedAt.IsZero() {
			it := item
			it.Scopes = unused
			r.UnusedScopes = append(r.UnusedScopes, it)
		}
	}
	return r
}

func with(i Item, detail string) Item {
	i.Detail = detail
	return i
}

// isWrite reports whether a scope changes data: <service>:write, or
// <service>:delete, which is no less dangerous for being narrower.
func isWrite(scope string) bool {
	for _, suffix := range []string{":write", ":delete"} {
		if len(scope) > len(suffix) && strings.HasSuffix(scope, suffix) {
			return true
		}
	}
	return false
}

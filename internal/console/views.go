package console

import (
	"slices"
	"strings"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// Change is what approving a request would add to the access its
// requester holds now: the approver judges the difference, not the
// request in isolation.
type Change struct {
	// HeldLive is how many live tokens the requester holds.
	HeldLive int
	// NewServices are services the requester holds no live token for.
	NewServices []string
	// NewScopes are scopes no live token of theirs grants.
	NewScopes []string
	// FirstWrite: the request has a write or delete scope and nothing
	// the requester holds does.
	FirstWrite bool
	// Unbound: the request names no address range while every live token
	// of theirs has one (it would reach from anywhere).
	Unbound bool
	// Longer: the request lives longer than any live token of theirs.
	Longer bool
}

// Nothing reports whether the request adds nothing to what is held.
func (c Change) Nothing() bool {
	return len(c.NewServices) == 0 && len(c.NewScopes) == 0 && !c.FirstWrite && !c.Unbound && !c.Longer
}

// AccessChange compares r with the live tokens in held (the requester's).
func AccessChange(r *store.Request, held []*store.Token, now time.Time) Change {
	var c Change
	var scopes, services []string
	allBound, anyWrite := true, false
	var longest time.Duration
	for _, t := range held {
		if store.StateOf(t, now) != store.StateActive {
			continue
		}
		c.HeldLive++
		scopes = append(scopes, t.Scopes...)
		services = append(services, t.Services...)
		if len(t.CIDRs) == 0 {
			allBound = false
		}
		anyWrite = anyWrite || slices.ContainsFunc(t.Scopes, writes)
		longest = max(longest, t.ExpiresAt.Sub(t.NotBefore))
	}
	for _, s := range r.Services {
		if !slices.Contains(services, s) && !slices.Contains(c.NewServices, s) {
			c.NewServices = append(c.NewServices, s)
		}
	}
	for _, s := range r.Scopes {
		if !slices.Contains(scopes, s) && !slices.Contains(c.NewScopes, s) {
			c.NewScopes = append(c.NewScopes, s)
		}
	}
	c.FirstWrite = !anyWrite && slices.ContainsFunc(r.Scopes, writes)
	c.Unbound = c.HeldLive > 0 && allBound && len(r.CIDRs) == 0
	c.Longer = c.HeldLive > 0 && r.TTL > longest
	return c
}

// writes reports whether a scope changes something: anything but a read.
func writes(scope string) bool { return !strings.HasSuffix(scope, ":read") }

// History is a requester's record over a recent window, for the approver.
type History struct {
	Since     time.Time
	Requests  int
	Approved  int
	Denied    int
	Revoked   int
	Exposures int
	// Recent are the newest of their requests, newest first.
	Recent []*store.Request
}

// historyWindow is how far back the approver's page looks.
const historyWindow = 90 * 24 * time.Hour

// RecentHistory counts principal's requests (all of them, r excluded) and
// the revocations of tokens they held, over the last 90 days.
func RecentHistory(principal string, exclude string, requests []*store.Request, held []*store.Token, now time.Time) History {
	h := History{Since: now.Add(-historyWindow)}
	for _, r := range requests {
		if r.ID == exclude || r.RequestedBy != principal || r.CreatedAt.Before(h.Since) {
			continue
		}
		h.Requests++
		switch r.Status {
		case store.RequestApproved, store.RequestClaimed:
			h.Approved++
		case store.RequestDenied:
			h.Denied++
		}
		h.Recent = append(h.Recent, r)
	}
	slices.SortFunc(h.Recent, func(a, b *store.Request) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(h.Recent) > 10 {
		h.Recent = h.Recent[:10]
	}
	for _, t := range held {
		if !t.RevokedAt.IsZero() && !t.RevokedAt.Before(h.Since) {
			h.Revoked++
		}
		// The token whose secret was found in the wild; the rest of its
		// chain is revoked with it but was not itself exposed.
		if !t.ExposedAt.IsZero() && !t.ExposedAt.Before(h.Since) {
			h.Exposures++
		}
	}
	return h
}

// Page is one page of a list: its items and the cursor of the next.
type Page[T any] struct {
	Items []T
	// Next is the cursor of the following page, "" on the last.
	Next string
	// Total counts the items of every page.
	Total int
}

// pageSize is how many rows a list page shows.
const pageSize = 50

// Paginate returns the page of items after the one whose key is after
// (from the start when ""); items are in key order.
func Paginate[T any](items []T, key func(T) string, after string, size int) Page[T] {
	start := 0
	if after != "" {
		// Keys are ids in creation order: find the first past after.
		start = len(items)
		for i, it := range items {
			if key(it) == after {
				start = i + 1
				break
			}
		}
	}
	end := min(start+size, len(items))
	p := Page[T]{Items: items[start:end], Total: len(items)}
	if end < len(items) && end > start {
		p.Next = key(items[end-1])
	}
	return p
}

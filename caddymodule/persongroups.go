package caddymodule

import (
	"slices"
	"strings"
	"sync"
)

// groupsSeen remembers, per person, the groups their last ID token on this
// node carried, so that their management tokens' recorded groups are
// refreshed (manage.RefreshGroups, a look through the management tokens)
// only when a sign-in brings groups that differ, not on every call.
type groupsSeen struct {
	mu     sync.Mutex
	groups map[string]string
}

// maxPeopleSeen bounds the memory; past it the memory starts over, which
// costs one more refresh per person, never a missed one.
const maxPeopleSeen = 10000

// changed reports whether principal's groups differ from those last seen,
// and remembers them. A refresh that fails must call forget, so the next
// call tries again.
func (g *groupsSeen) changed(principal string, groups []string) bool {
	key := groupsKey(groups)
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.groups[principal]; ok && last == key {
		return false
	}
	if g.groups == nil || len(g.groups) >= maxPeopleSeen {
		g.groups = map[string]string{}
	}
	g.groups[principal] = key
	return true
}

func (g *groupsSeen) forget(principal string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.groups, principal)
}

// groupsKey is groups as a set, case-insensitively, as the policy reads it.
func groupsKey(groups []string) string {
	lower := make([]string, len(groups))
	for i, g := range groups {
		lower[i] = strings.ToLower(g)
	}
	slices.Sort(lower)
	return strings.Join(slices.Compact(lower), "\x00")
}

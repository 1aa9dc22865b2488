package manage

import (
	"context"
	"slices"
	"strings"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/store"
)

// RefreshGroups records the groups a person's identity provider gave them
// at this sign-in on every live management token they hold, where the
// recorded groups differ: a management token is judged as the person who
// holds it (Principal.Groups), so it must not keep the groups of the day
// it was claimed after the person joined developers or left approvers.
// It returns how many tokens it changed.
func (s *Service) RefreshGroups(ctx context.Context, p Principal) (int, error) {
	if p.kind() != PersonKind || p.Name == "" {
		return 0, nil
	}
	toks, err := s.Tokens.List(ctx, store.Filter{Service: ManagementService}, "")
	if err != nil {
		return 0, err
	}
	now := s.now()
	changed := 0
	for _, t := range toks {
		if HolderOf(t) != p.Name || lifecycle.Inactive(t, now) != "" || sameGroups(t.HolderGroups, p.Groups) {
			continue
		}
		if err := s.Tokens.SetHolderGroups(ctx, t.ID, p.Groups); err != nil {
			return changed, err
		}
		changed++
	}
	return changed, nil
}

// sameGroups compares group lists as the admin policy reads them: as sets,
// case-insensitively.
func sameGroups(a, b []string) bool {
	norm := func(gs []string) []string {
		out := make([]string, len(gs))
		for i, g := range gs {
			out[i] = strings.ToLower(g)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

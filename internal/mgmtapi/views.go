package mgmtapi

import (
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"time"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/store"
)

// viewOf is a token as the API shows it.
func viewOf(t *store.Token, now time.Time) api.TokenView {
	return api.TokenView{
		ID: t.ID, State: lifecycle.State(t, now), Owner: t.Owner, Purpose: t.Purpose,
		Scopes: nonNil(t.Scopes), Services: nonNil(t.Services), CIDRs: nonNil(t.CIDRs),
		NotBefore: t.NotBefore, ExpiresAt: t.ExpiresAt, MaxUses: t.MaxUses, Uses: t.Uses, RateLimit: ratelimit.Format(t.RateLimit),
		CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, HeldBy: t.HeldBy, ApprovedBy: t.ApprovedBy,
		RotatedFrom: t.RotatedFrom, RotatedTo: t.RotatedTo, GraceUntil: timePtr(t.GraceUntil),
		RevokedAt: timePtr(t.RevokedAt), RevokedBy: t.RevokedBy, RevokeReason: t.RevokeReason,
		ExposedAt: timePtr(t.ExposedAt), ExposureSource: t.ExposureSource, ExposureURL: t.ExposureURL,
		LastUsedAt: timePtr(t.LastUsedAt), LastUsedIP: t.LastUsedIP, UsedScopes: nonNil(t.UsedScopes),
	}
}

func viewsOf(ts []*store.Token, now time.Time) []api.TokenView {
	out := make([]api.TokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, viewOf(t, now))
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

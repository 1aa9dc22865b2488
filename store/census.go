package store

import (
	"context"
	"time"
)

// Token states, as the inventory lists them and the metrics count them.
const (
	StateActive   = "active"
	StatePending  = "pending" // not yet valid (before not_before)
	StateRotating = "rotating"
	StateRotated  = "rotated"
	StateExpired  = "expired"
	StateRevoked  = "revoked"
	// StateExposed is a token revoked because its secret was found in
	// the wild (ExposedAt is set).
	StateExposed   = "exposed"
	StateExhausted = "exhausted"
)

// States lists every state StateOf returns.
var States = []string{StateActive, StatePending, StateRotating, StateRotated, StateExpired, StateRevoked, StateExposed, StateExhausted}

// StateOf names t's state at now. The first that applies wins: exposed
// (revoked because the secret leaked), revoked,
// rotating (the old secret of a rotation, within its grace window),
// rotated, expired, exhausted (a use limit reached), pending (before
// not_before), active.
func StateOf(t *Token, now time.Time) string {
	switch {
	case !t.ExposedAt.IsZero():
		return StateExposed
	case !t.RevokedAt.IsZero():
		return StateRevoked
	case t.RotatedTo != "" && now.Before(t.GraceUntil):
		return StateRotating
	case t.RotatedTo != "":
		return StateRotated
	case !now.Before(t.ExpiresAt):
		return StateExpired
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return StateExhausted
	case now.Before(t.NotBefore):
		return StatePending
	}
	return StateActive
}

// Census is a count of what a store holds at one instant.
type Census struct {
	// Tokens counts tokens by StateOf; every state is present.
	Tokens map[string]int64
	// ExpiringSoon counts the tokens still usable or about to be (active
	// or pending) whose expires_at is within the asked window of now.
	ExpiringSoon int64
	// PendingRequests counts management requests waiting for a decision.
	PendingRequests int64
}

// NewCensus returns a census with every state at zero.
func NewCensus() *Census {
	c := &Census{Tokens: make(map[string]int64, len(States))}
	for _, s := range States {
		c.Tokens[s] = 0
	}
	return c
}

// Add counts one token.
func (c *Census) Add(t *Token, now time.Time, expiringWithin time.Duration) {
	state := StateOf(t, now)
	c.Tokens[state]++
	if (state == StateActive || state == StatePending) && t.ExpiresAt.Sub(now) <= expiringWithin {
		c.ExpiringSoon++
	}
}

// Counter is implemented by backends that count without handing every
// record to the caller (one GROUP BY query instead of loading a million
// rows). The counts must equal what Count's listing fallback finds.
type Counter interface {
	Count(ctx context.Context, now time.Time, expiringWithin time.Duration) (*Census, error)
}

// Count takes a census of b: through Counter when b implements it,
// otherwise by listing every token and request.
func Count(ctx context.Context, b Backend, now time.Time, expiringWithin time.Duration) (*Census, error) {
	if c, ok := b.(Counter); ok {
		return c.Count(ctx, now, expiringWithin)
	}
	toks, err := b.List(ctx, Filter{})
	if err != nil {
		return nil, err
	}
	reqs, err := b.ListRequests(ctx, RequestPending)
	if err != nil {
		return nil, err
	}
	c := NewCensus()
	for _, t := range toks {
		c.Add(t, now, expiringWithin)
	}
	c.PendingRequests = int64(len(reqs))
	return c, nil
}

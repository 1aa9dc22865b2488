package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// ExposedReason is the revoke reason of a token whose secret leaked.
const ExposedReason = "leaked"

// Exposure is who found a secret in the wild and where.
type Exposure struct {
	// Source names the reporter: github, gitleaks, or what a reporter
	// calls itself.
	Source string
	// URL is where the secret was found (a commit, a paste, a log).
	URL string
}

// Limits on what a reporter may have kept on a record.
const (
	maxSourceLen = 64
	maxURLLen    = 2048
)

// Why Expose changed nothing. Neither is a refusal of the reporter: the
// secret was ours, and the answer says what it was.
var (
	// ErrAlreadyExposed: the secret was reported before; that report
	// revoked it and announced it, so this one does neither again.
	ErrAlreadyExposed = errors.New("token already exposed")
	// ErrNotLive: the secret no longer works (revoked, rotated past its
	// grace, expired, used up): nothing to stop.
	ErrNotLive = errors.New("token no longer live")
)

// Expose records that the secret of token id was found in the wild and
// revokes it with reason "leaked", with every live token of its rotation
// chain (a successor holds the same grants). The exposure (when, by whom,
// where) is kept on the token named, whose state reads exposed from then
// on. The check and the change are one store transaction, so of two
// reports of one secret racing on two nodes one changes the token and the
// other gets ErrAlreadyExposed: a secret is announced once.
//
// It returns the token named and every token it stopped (the named one
// among them), and the exposure as recorded: the source and URL cut to
// size and stripped of anything secret-shaped, since a reporter's URL may
// carry the secret itself.
func (s *Service) Expose(ctx context.Context, actor, id string, e Exposure) (*store.Token, []*store.Token, Exposure, error) {
	e = cleanExposure(e)
	now := s.now().UTC()
	changed, err := s.Store.UpdateChain(ctx, id, func(t *store.Token) (bool, error) {
		switch {
		case t.ID == id && !t.ExposedAt.IsZero():
			return false, ErrAlreadyExposed
		case t.ID == id && !Live(t, now):
			return false, ErrNotLive
		case t.ID == id:
			t.RevokedAt, t.RevokedBy, t.RevokeReason = now, actor, ExposedReason
			t.ExposedAt, t.ExposureSource, t.ExposureURL = now, e.Source, e.URL
		case !Live(t, now):
			return false, nil
		default:
			t.RevokedAt, t.RevokedBy, t.RevokeReason = now, actor, ExposedReason+": revoked with "+id+", of its rotation chain"
		}
		return true, nil
	})
	if err != nil {
		return nil, nil, e, s.storeError(id, err)
	}
	var named *store.Token
	for _, t := range changed {
		s.forget(t)
		if t.ID == id {
			named = t
		}
	}
	if named == nil {
		// Unreachable: the change above stores the token named or fails.
		return nil, nil, e, fmt.Errorf("exposing %s: the store did not return it", id)
	}
	return named, changed, e, nil
}

// Live reports whether t's secret still opens anything: not revoked, not
// rotated past its grace, not expired, not used up. A token not yet valid
// is live: it will be.
func Live(t *store.Token, now time.Time) bool {
	switch {
	case !t.RevokedAt.IsZero(), !now.Before(t.ExpiresAt):
		return false
	case t.RotatedTo != "" && !now.Before(t.GraceUntil):
		return false
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return false
	}
	return true
}

func cleanExposure(e Exposure) Exposure {
	return Exposure{Source: clip(token.Redact(e.Source), maxSourceLen), URL: clip(token.Redact(e.URL), maxURLLen)}
}

// clip cuts s to at most n bytes of printable text: control characters
// would let a reporter forge lines in a terminal or a log viewer.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || token.Invisible(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}

// Text is the exposure as an audit line's reason tells it.
func (e Exposure) Text() string {
	text := ExposedReason
	if e.Source != "" {
		text += ", reported by " + e.Source
	}
	if e.URL != "" {
		text += ", found at " + e.URL
	}
	return text
}

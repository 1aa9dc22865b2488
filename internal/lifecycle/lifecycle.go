// Package lifecycle issues, rotates, revokes and lists tokens. It validates
// what people ask for, returns what changed, and tells the gateway to
// forget a token the moment it changes. It writes no audit line:
// internal/manage, the one caller that acts for someone, writes the action
// lines from what it returns, so a rule lives in one place and so does
// the trail.
package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/binding"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/textcheck"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Error is a refusal a caller can act on: the one refusal type of
// package reason (a declared code, its class, a detail that never holds a
// secret). Only the transport that answers the caller turns a class into
// a status code.
type Error = reason.Refusal

// Kind is the class of a refusal, as a caller acts on it.
type Kind = reason.Class

// The kinds of refusal the lifecycle and the management actions give.
const (
	// KindInvalid: what was asked is malformed or out of bounds.
	KindInvalid = reason.BadRequest
	// KindForbidden: the policy does not let this caller do it.
	KindForbidden = reason.Forbidden
	// KindNotFound: no token or request with that id.
	KindNotFound = reason.NotFound
	// KindConflict: the thing exists but is not in a state that allows it.
	KindConflict = reason.Conflict
	// KindGone: it was possible once and never will be again (a request
	// already claimed or lapsed).
	KindGone = reason.Gone
)

func invalid(code, format string, args ...any) *Error {
	return &Error{Class: KindInvalid, Code: code, Detail: fmt.Sprintf(format, args...)}
}

var (
	namePattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$`)
	scopePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}:[a-z0-9][a-z0-9_.-]{0,63}$`)
)

// Limits on one request, so nobody can store a megabyte of scopes.
const (
	maxPurposeLen = 512
	maxListLen    = 32
	maxGrace      = 7 * 24 * time.Hour
	// DefaultGrace is how long an old secret keeps working after rotation
	// when the caller does not say.
	DefaultGrace = 10 * time.Minute
)

// Spec is what someone asks a token for.
type Spec struct {
	Owner     string     `json:"owner"`
	Purpose   string     `json:"purpose"`
	Scopes    []string   `json:"scopes"`
	Services  []string   `json:"services"`
	CIDRs     []string   `json:"cidrs,omitempty"`
	TTL       string     `json:"ttl"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	MaxUses   int64      `json:"max_uses,omitempty"`
	// RateLimit is the token's own rate limit as requests/window
	// ("100/1m"); empty for none.
	RateLimit string `json:"rate_limit,omitempty"`
	// Ticket is the change ticket or justification an approver reads; it
	// is kept on the request, not on the token.
	Ticket string `json:"ticket,omitempty"`
}

// Service runs token lifecycle actions.
type Service struct {
	Store  store.Store
	Hasher *token.Hasher
	// MaxTTL caps every token's lifetime.
	MaxTTL time.Duration
	// Forget is told about every token that changed, so caches drop it.
	Forget func(*store.Token)
	Now    func() time.Time
	// ParseDuration reads a spec's ttl; the Caddy app sets Caddy's, so a
	// ttl is written as a Caddyfile duration is (30d too). Default:
	// time.ParseDuration.
	ParseDuration func(string) (time.Duration, error)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Validate checks a spec and returns the token record it describes, with
// no id or hash yet.
func (s *Service) Validate(spec Spec) (*store.Token, error) {
	if err := checkSpecText(spec); err != nil {
		return nil, err
	}
	if !namePattern.MatchString(spec.Owner) {
		return nil, invalid(reason.OwnerInvalid, "owner must be 1-128 letters, digits or _.@-")
	}
	return s.validate(spec)
}

// maxPrincipalLen bounds a verified principal used as an owner.
const maxPrincipalLen = 256

// ValidateVerified checks a spec whose owner is a verified principal
// rather than a name someone typed: a workload's subject such as
// repo:octo/app:ref:refs/heads/main or system:serviceaccount:ci:deployer
// holds ':' and '/', which typed owners may not. It must still be
// acceptable free text, and short.
func (s *Service) ValidateVerified(spec Spec) (*store.Token, error) {
	if err := checkSpecText(spec); err != nil {
		return nil, err
	}
	if spec.Owner == "" || len(spec.Owner) > maxPrincipalLen {
		return nil, invalid(reason.OwnerInvalid, "owner must be a principal of 1-%d bytes", maxPrincipalLen)
	}
	return s.validate(spec)
}

// validate checks all of a spec but its owner.
func (s *Service) validate(spec Spec) (*store.Token, error) {
	if spec.Purpose == "" {
		return nil, invalid(reason.PurposeRequired, "every token needs a purpose")
	}
	if len(spec.Purpose) > maxPurposeLen {
		return nil, invalid(reason.PurposeInvalid, "purpose is longer than %d bytes", maxPurposeLen)
	}
	if len(spec.Ticket) > maxPurposeLen {
		return nil, invalid(reason.TicketInvalid, "ticket is longer than %d bytes", maxPurposeLen)
	}
	if len(spec.Scopes) == 0 || len(spec.Scopes) > maxListLen {
		return nil, invalid(reason.ScopeInvalid, "give between 1 and %d scopes", maxListLen)
	}
	for _, sc := range spec.Scopes {
		if !scopePattern.MatchString(sc) {
			return nil, invalid(reason.ScopeInvalid, "scope %q is not of the form <service>:<access>", truncate(sc))
		}
	}
	if len(spec.Services) == 0 || len(spec.Services) > maxListLen {
		return nil, invalid(reason.ServiceInvalid, "give between 1 and %d services", maxListLen)
	}
	for _, sv := range spec.Services {
		if !namePattern.MatchString(sv) {
			return nil, invalid(reason.ServiceInvalid, "service %q must be letters, digits or _.@-", truncate(sv))
		}
	}
	if len(spec.CIDRs) > maxListLen {
		return nil, invalid(reason.CIDRInvalid, "at most %d CIDRs", maxListLen)
	}
	cidrs := make([]string, 0, len(spec.CIDRs))
	for _, c := range spec.CIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, invalid(reason.CIDRInvalid, "%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", truncate(c))
		}
		// Stored canonical (an IPv4-mapped range as the IPv4 range it
		// matches), so the admin policy reads its real width.
		cidrs = append(cidrs, binding.Canonical(p).String())
	}
	if spec.TTL == "" {
		return nil, invalid(reason.TTLRequired, "every token needs a ttl, such as 1h")
	}
	parse := time.ParseDuration
	if s.ParseDuration != nil {
		parse = s.ParseDuration
	}
	ttl, err := parse(spec.TTL)
	if err != nil || ttl <= 0 {
		return nil, invalid(reason.TTLInvalid, "ttl %q is not a positive duration such as 30m, 1h or 30d", truncate(spec.TTL))
	}
	if s.MaxTTL > 0 && ttl > s.MaxTTL {
		return nil, invalid(reason.TTLExceedsMax, "ttl %s is longer than max_ttl %s", ttl, s.MaxTTL)
	}
	if spec.MaxUses < 0 {
		return nil, invalid(reason.MaxUsesInvalid, "max_uses must be 0 (unlimited) or more")
	}
	rate, err := ratelimit.Parse(spec.RateLimit)
	if err != nil {
		return nil, invalid(reason.RateLimitInvalid, "rate_limit must be requests/window with requests above 0 and the window one of 1s, 1m, 1h, 24h, such as 100/1m")
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	notBefore := now
	if spec.NotBefore != nil {
		notBefore = spec.NotBefore.UTC().Truncate(time.Microsecond)
		if notBefore.Before(now.Add(-time.Minute)) {
			return nil, invalid(reason.NotBeforeInvalid, "not_before lies in the past")
		}
		if s.MaxTTL > 0 && notBefore.Sub(now) > s.MaxTTL {
			return nil, invalid(reason.NotBeforeInvalid, "not_before is further away than max_ttl")
		}
	}
	return &store.Token{
		Owner:     spec.Owner,
		Purpose:   spec.Purpose,
		Scopes:    dedupe(spec.Scopes),
		Services:  dedupe(spec.Services),
		CIDRs:     dedupe(cidrs),
		NotBefore: notBefore,
		ExpiresAt: notBefore.Add(ttl),
		MaxUses:   spec.MaxUses,
		RateLimit: rate,
		CreatedAt: now,
	}, nil
}

// CheckText refuses free text (an owner, a purpose, a reason, a name)
// that holds control or bidi characters, is not UTF-8, or holds a pasted
// secret. field names the input, and the code is field_invalid, or
// secret_in_field for a secret; the message never quotes the text.
func CheckText(field, text string) *Error {
	err := textcheck.Check(text)
	if err == nil {
		return nil
	}
	var p *textcheck.Problem
	if errors.As(err, &p) && p.Secret {
		return invalid(reason.SecretInField, "%s %s", field, err)
	}
	return invalid(fieldCodes[field], "%s %s", field, err)
}

// fieldCodes name the refusal of each free-text field's text.
var fieldCodes = map[string]string{
	"owner": reason.OwnerInvalid, "purpose": reason.PurposeInvalid, "scope": reason.ScopeInvalid,
	"service": reason.ServiceInvalid, "cidr": reason.CIDRInvalid, "ttl": reason.TTLInvalid,
	"ticket": reason.TicketInvalid, "reason": reason.ReasonInvalid,
	"requester": reason.RequesterInvalid, "approver": reason.ApproverInvalid,
}

// checkSpecText runs CheckText over every string of a spec, before the
// patterns below, so the answer names the character class (or the pasted
// secret) rather than only the expected shape.
func checkSpecText(spec Spec) error {
	fields := []struct {
		name   string
		values []string
	}{
		{"owner", []string{spec.Owner}}, {"purpose", []string{spec.Purpose}}, {"scope", spec.Scopes},
		{"service", spec.Services}, {"cidr", spec.CIDRs}, {"ttl", []string{spec.TTL}},
		{"ticket", []string{spec.Ticket}},
	}
	for _, f := range fields {
		for _, v := range f.values {
			if err := CheckText(f.name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Issue validates spec and stores a new token created by actor. The secret
// is returned once, to actor, who therefore holds it, and never stored.
func (s *Service) Issue(ctx context.Context, actor string, spec Spec) (string, *store.Token, error) {
	rec, err := s.Validate(spec)
	if err != nil {
		return "", nil, err
	}
	rec.CreatedBy, rec.HeldBy = actor, actor
	secret, err := s.Create(ctx, rec)
	if err != nil {
		return "", nil, err
	}
	return secret, rec, nil
}

// Create gives a validated record a fresh id and secret and stores it. The record
// must name who receives the secret (HeldBy): a token nobody holds could
// not be told apart from a legacy one, whose holder the admin policy
// guesses from its owner.
func (s *Service) Create(ctx context.Context, rec *store.Token) (string, error) {
	if rec.HeldBy == "" {
		return "", errors.New("storing token: no holder (held_by) recorded")
	}
	secret := s.Mint(rec)
	if err := s.Store.Create(ctx, rec); err != nil {
		return "", fmt.Errorf("storing token: %w", err)
	}
	return secret, nil
}

// Mint gives rec a fresh public id and a fresh secret, stores only the
// secret's hash in rec, and returns the secret: the one place a secret is
// made, so every token is hashed the way the gateway looks it up.
func (s *Service) Mint(rec *store.Token) (secret string) {
	secret = token.NewSecret()
	hash := s.Hasher.Hash(secret)
	rec.ID, rec.Hash = token.NewID(), hash[:]
	return secret
}

// Revoke ends a token at once, and with it every live secret of its
// rotation chain: the tokens it was rotated from that are still in their
// grace window, and every token it was rotated to. They share its grants
// and its use budget, so revoking one id while another secret of the chain
// keeps working would revoke nothing. Secrets of the chain that are dead
// already (revoked, or rotated and past their grace) stay as they are. The
// store revokes the chain in one transaction, so a rotation racing the
// revoke either comes first and its successor is revoked too, or comes
// after and finds the token revoked.
//
// It returns the token named and every token revoked (the named one
// among them, unless it was revoked before).
func (s *Service) Revoke(ctx context.Context, actor, id, why string) (*store.Token, []*store.Token, error) {
	if why == "" {
		return nil, nil, invalid(reason.ReasonRequired, "say why the token is revoked")
	}
	if err := CheckReason(why); err != nil {
		return nil, nil, err
	}
	now := s.now().UTC()
	changed, err := s.Store.UpdateChain(ctx, id, func(t *store.Token) (bool, error) {
		switch {
		case !t.RevokedAt.IsZero():
			return false, nil
		case t.ID == id:
			t.RevokedAt, t.RevokedBy, t.RevokeReason = now, actor, why
		case t.RotatedTo != "" && !now.Before(t.GraceUntil):
			// Rotated and past its grace: its secret is dead already.
			return false, nil
		default:
			t.RevokedAt, t.RevokedBy, t.RevokeReason = now, actor, "revoked with "+id+", of its rotation chain"
		}
		return true, nil
	})
	var named *store.Token
	for _, t := range changed {
		if t.ID == id {
			named = t
		}
	}
	switch {
	case err == nil && len(changed) == 0:
		err = &Error{Class: KindConflict, Code: reason.AlreadyRevoked, Detail: "token " + id + " is already revoked"}
	case err == nil && named == nil:
		// id was revoked already, but secrets of its chain were live (a
		// revoke from before chains were revoked whole): they are stopped
		// now, and the answer is the revoked id.
		named, err = s.Store.Get(ctx, id)
	}
	if err != nil {
		return nil, nil, s.storeError(id, err)
	}
	for _, t := range changed {
		s.forget(t)
	}
	return named, changed, nil
}

// CheckReason refuses a reason (for a revoke, an approval, a denial) that
// is too long or not acceptable free text. An empty reason passes: callers
// that require one say so themselves.
func CheckReason(text string) error {
	if len(text) > maxPurposeLen {
		return invalid(reason.ReasonInvalid, "reason is longer than %d bytes", maxPurposeLen)
	}
	if err := CheckText("reason", text); err != nil {
		return err
	}
	return nil
}

// Rotate issues a successor with a new secret and the same grants; the old
// secret keeps working for grace, then answers token_rotated. The successor
// keeps the old expiry and takes over the uses that were left: during the
// grace window a use of either secret spends that one budget (the store
// spends a rotated token's uses on its successor), so rotating never
// extends what a token may do.
func (s *Service) Rotate(ctx context.Context, actor string, actorGroups []string, id string, grace time.Duration) (Rotation, error) {
	if grace < 0 || grace > maxGrace {
		return Rotation{}, invalid(reason.GraceInvalid, "grace must be between 0 and %s", maxGrace)
	}
	old, err := s.Store.Get(ctx, id)
	if err != nil {
		return Rotation{}, s.storeError(id, err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	if state := Inactive(old, now); state != "" {
		return Rotation{}, &Error{Class: KindConflict, Code: inactiveCodes[state], Detail: "only an active token can be rotated; " + id + " is " + state}
	}
	next := old.Clone()
	secret := s.Mint(next)
	// The new secret goes to actor, who holds it from now on, whoever
	// held the old one, with the groups actor has now.
	next.CreatedAt, next.CreatedBy, next.HeldBy, next.RotatedFrom = now, actor, actor, id
	// Calls of the new secret count with those of the old, in the same
	// window: rotating does not renew a rate limit or a daily quota.
	next.RateKey = cmp.Or(old.RateKey, old.ID)
	next.HolderGroups = slices.Clone(actorGroups)
	next.Uses, next.Version, next.UsedScopes = 0, 0, nil
	next.LastUsedAt, next.LastUsedIP = time.Time{}, ""
	graceUntil := now.Add(grace)
	if graceUntil.After(old.ExpiresAt) {
		graceUntil = old.ExpiresAt
	}
	updated, err := s.Store.Rotate(ctx, id, next, func(o *store.Token) error {
		if state := Inactive(o, now); state != "" {
			return &Error{Class: KindConflict, Code: inactiveCodes[state], Detail: "token " + id + " changed while rotating: " + state}
		}
		// The budget is read from the locked record, so no use spent
		// between the Get above and now is counted twice.
		if o.MaxUses > 0 {
			next.MaxUses = o.MaxUses - o.Uses
		}
		o.GraceUntil, o.RotatedTo = graceUntil, next.ID
		return nil
	})
	if err != nil {
		return Rotation{}, s.storeError(id, err)
	}
	s.forget(updated)
	return Rotation{Secret: secret, Next: next, GraceUntil: graceUntil}, nil
}

// Rotation is what Rotate made: the successor and its secret, and when the
// old secret stops working.
type Rotation struct {
	Secret     string
	Next       *store.Token
	GraceUntil time.Time
}

// Inactive says why a token can no longer be used ("revoked", "rotated",
// "expired", "exhausted"), or "" while it is active or not yet valid.
func Inactive(t *store.Token, now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case t.RotatedTo != "":
		return "rotated"
	case !now.Before(t.ExpiresAt):
		return "expired"
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return "exhausted"
	}
	return ""
}

// inactiveCodes are the codes of refusing to act on a token in each state
// Inactive names.
var inactiveCodes = map[string]string{
	"revoked": reason.TokenRevoked, "rotated": reason.TokenRotated,
	"expired": reason.TokenExpired, "exhausted": reason.TokenExhausted,
}

// State names a token's lifecycle state for the inventory, as the
// metrics count it.
func State(t *store.Token, now time.Time) string { return store.StateOf(t, now) }

// Get returns one token.
func (s *Service) Get(ctx context.Context, id string) (*store.Token, error) {
	t, err := s.Store.Get(ctx, id)
	if err != nil {
		return nil, s.storeError(id, err)
	}
	return t, nil
}

// List returns the tokens matching the filter and, when state is not
// empty, in that state.
func (s *Service) List(ctx context.Context, f store.Filter, state string) ([]*store.Token, error) {
	all, err := s.Store.List(ctx, f)
	if err != nil || state == "" {
		return all, err
	}
	now := s.now()
	return slices.DeleteFunc(all, func(t *store.Token) bool { return State(t, now) != state }), nil
}

// SetHolderGroups records groups as the identity-provider groups of the
// holder of token id (a new sign-in told them), and drops the token from
// the caches, so its next call is judged with them.
func (s *Service) SetHolderGroups(ctx context.Context, id string, groups []string) error {
	t, err := s.Store.Update(ctx, id, func(t *store.Token) error {
		t.HolderGroups = slices.Clone(groups)
		return nil
	})
	if err != nil {
		return s.storeError(id, err)
	}
	s.forget(t)
	return nil
}

func (s *Service) forget(t *store.Token) {
	if s.Forget != nil {
		s.Forget(t)
	}
}

func (s *Service) storeError(id string, err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrNotFound):
		return &Error{Class: KindNotFound, Code: reason.TokenNotFound, Detail: "no token " + cmp.Or(SafeID(id), "with that id")}
	}
	return err
}

// idPattern is the shape of every public id: tok_..., req_..., dec_....
var idPattern = regexp.MustCompile(`^[a-z]{3}_[0-9A-Za-z]{1,64}$`)

// SafeID returns id when it has the shape of a public id, else "". Ids
// come from URL paths and are echoed into answers and audit lines, where
// control characters or a secret pasted in place of an id must not go.
func SafeID(id string) string {
	if !idPattern.MatchString(id) || textcheck.HasSecret(id) {
		return ""
	}
	return id
}

func dedupe(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// truncate keeps echoed input short, and never echoes anything that looks
// like a secret pasted into the wrong field.
func truncate(s string) string {
	if strings.Contains(s, token.Prefix) {
		return "[redacted]"
	}
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

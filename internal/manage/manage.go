// Package manage runs token management with separation of duties: every
// action is first put to the admin policy (policies/admin.rego), then
// carried out through the lifecycle service. The flow for a token that
// needs approval is
//
//	request (requester) -> approve or deny (someone else) -> claim (requester)
//
// The secret is generated at the claim and returned only to the claimer,
// so the approver never sees it. A read-only, short-lived, bound request
// is approved by the policy itself and returns the secret at once.
package manage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/report"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// ManagementService is the service every management token is bound to.
const ManagementService = "tokengate-admin"

// ClaimWindow is how long an approved request waits for its requester.
const ClaimWindow = 15 * time.Minute

// Principal is who is acting, as verified: never a name typed into a
// request.
type Principal struct {
	// Name is the verified identity: the principal claim of a person's ID
	// token, the subject of a workload's token, the holder (held_by) of
	// the caller's management token, or "local-operator" on Caddy's admin
	// endpoint.
	Name string
	// Kind is PersonKind, WorkloadKind, ManagementTokenKind or LocalKind.
	Kind string
	// Groups come from the identity provider's groups claim: a person's
	// at this sign-in, a management token's holder's as recorded when
	// they claimed it. The admin policy adds the directory's.
	Groups []string
	// Claims are the verified token's claims (people and workloads).
	Claims map[string]any
	// Issuer names where a person's or workload's identity came from.
	Issuer  string
	TokenID string
	Scopes  []string
	// Local marks the operator behind Caddy's admin endpoint.
	Local bool
	// StepUp is set, for one action, when the caller proved presence with
	// a security key whose assertion was bound to the request acted on
	// (the web console's step-up). The admin policy sees it as
	// input.actor.step_up.
	StepUp bool
	// Subject is the subject token a workload presented (its hash and
	// expiry): the credential an exchange spends, once.
	Subject Subject
}

// Principal kinds, as the admin policy sees them in input.actor.kind.
const (
	PersonKind          = "person"
	WorkloadKind        = "workload"
	ManagementTokenKind = "management_token"
	LocalKind           = "local"
)

// kind is p.Kind, defaulting for callers built before kinds existed.
func (p Principal) kind() string {
	switch {
	case p.Kind != "":
		return p.Kind
	case p.Local:
		return LocalKind
	default:
		return ManagementTokenKind
	}
}

// Service carries out management actions.
type Service struct {
	Tokens   *lifecycle.Service
	Requests store.RequestStore
	Policy   *policy.Engine
	Audit    *audit.Logger
	Now      func() time.Time
	// Events hears about requests and revocations (the webhooks); nil
	// tells nobody.
	Events Publisher
	// ConsoleURL, when set (checked by notify.ConsoleBase), is where the
	// web console is served; events then link to the page of what they
	// are about.
	ConsoleURL string
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// PolicyError is a failure of the admin policy itself (missing, broken,
// erroring): the action fails closed, never allowed.
type PolicyError struct{ Err error }

func (e *PolicyError) Error() string { return "admin policy: " + e.Err.Error() }
func (e *PolicyError) Unwrap() error { return e.Err }

// refusal is a forbidden action carrying the policy's reasons.
func refusal(reasons []string) *lifecycle.Error {
	return &lifecycle.Error{Class: lifecycle.KindForbidden, Code: reasons[0], Reasons: reasons, Detail: "refused by the admin policy: " + fmt.Sprint(reasons)}
}

// authorize asks the admin policy whether p may do action. It returns the
// decision, or an error: a *lifecycle.Error (KindForbidden) when refused, a plain
// error when the policy could not decide (fail closed).
func (s *Service) authorize(ctx context.Context, action string, p Principal, extra map[string]any) (policy.Decision, error) {
	input := map[string]any{
		"action": action,
		"actor": map[string]any{
			"principal": p.Name, "token_id": p.TokenID, "scopes": nonNil(p.Scopes), "local": p.Local,
			"kind": p.kind(), "groups": nonNil(p.Groups), "claims": nonNilMap(p.Claims), "issuer": p.Issuer,
			"step_up": p.StepUp,
		},
		"config": map[string]any{"max_ttl_seconds": int64(s.Tokens.MaxTTL / time.Second)},
		"now":    s.Now().UnixNano(),
	}
	for k, v := range extra {
		input[k] = v
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return policy.Decision{}, &PolicyError{fmt.Errorf("building input: %v", err)}
	}
	d, err := s.Policy.Decide(ctx, policy.AdminQuery, value)
	if err != nil {
		return d, &PolicyError{err}
	}
	if !d.Allow {
		return d, refusal(d.Reasons)
	}
	return d, nil
}

// requestInput is a request as the admin policy sees it. held_by is who
// will hold the secret: the requester, the only one who may claim it (or,
// for issue, the caller who receives it at once).
func requestInput(r *store.Request) map[string]any {
	in := map[string]any{
		"id": r.ID, "owner": r.Owner, "purpose": r.Purpose, "scopes": nonNil(r.Scopes),
		"services": nonNil(r.Services), "cidrs": nonNil(r.CIDRs), "ttl_seconds": int64(r.TTL / time.Second),
		"max_uses": r.MaxUses, "requested_by": r.RequestedBy, "held_by": r.RequestedBy, "ticket": r.Ticket,
		"requester_groups": nonNil(r.RequesterGroups),
	}
	if !r.RateLimit.IsZero() {
		in["rate_limit"] = map[string]any{"requests": r.RateLimit.Requests, "window": ratelimit.WindowName(r.RateLimit.Window)}
	}
	return in
}

// tokenInput is a stored token as the admin policy sees it. held_by is
// HolderOf, so a token stored before holders were recorded is judged by
// who received it too.
func tokenInput(t *store.Token) map[string]any {
	return map[string]any{
		"id": t.ID, "owner": t.Owner, "created_by": t.CreatedBy, "held_by": HolderOf(t), "scopes": nonNil(t.Scopes),
		"services": nonNil(t.Services), "cidrs": nonNil(t.CIDRs), "holder_groups": nonNil(t.HolderGroups),
		"lifetime_seconds": int64(t.ExpiresAt.Sub(t.NotBefore) / time.Second),
	}
}

// Request asks for a token. When the admin policy approves it at once, the
// token is issued and its secret returned; otherwise secret is empty and
// the request waits, pending.
func (s *Service) Request(ctx context.Context, p Principal, spec lifecycle.Spec) (*store.Request, string, *store.Token, error) {
	rec, err := s.Tokens.Validate(spec)
	if err != nil {
		s.refused(ctx, "token.requested", p, "", "", err)
		return nil, "", nil, err
	}
	req := &store.Request{
		ID: token.NewPrefixedID("req_"), Owner: rec.Owner, Purpose: rec.Purpose,
		Scopes: rec.Scopes, Services: rec.Services, CIDRs: rec.CIDRs, TTL: rec.ExpiresAt.Sub(rec.NotBefore),
		MaxUses: rec.MaxUses, RateLimit: rec.RateLimit, Status: store.RequestPending, RequestedBy: p.Name, RequestedWith: p.TokenID,
		RequesterGroups: slices.Clone(p.Groups), Ticket: spec.Ticket, CreatedAt: s.now(),
	}
	if spec.NotBefore != nil {
		req.NotBefore = rec.NotBefore
	}
	d, err := s.authorize(ctx, "request", p, map[string]any{"request": requestInput(req)})
	if err != nil {
		s.refused(ctx, "token.requested", p, req.ID, "", err)
		return nil, "", nil, err
	}
	if !d.AutoApprove {
		if err := s.Requests.CreateRequest(ctx, req); err != nil {
			return nil, "", nil, fmt.Errorf("storing request: %w", err)
		}
		s.record(ctx, withRequest(&audit.Action{Msg: "token.requested", Actor: p.Name, TokenRequestID: req.ID, Reason: req.Purpose, Outcome: "success"}, req))
		s.publishRequest(notify.RequestPending, req)
		return req, "", nil, nil
	}
	// Approved by policy: record the request as approved and claim it in
	// the same breath, so the trail shows who asked and what approved.
	now := s.now()
	req.Status, req.DecidedBy, req.DecidedAt, req.Reason = store.RequestApproved, "policy:just-in-time", now, "read-only, short-lived and bound"
	req.ClaimBy = now.Add(ClaimWindow)
	if err := s.Requests.CreateRequest(ctx, req); err != nil {
		return nil, "", nil, fmt.Errorf("storing request: %w", err)
	}
	s.record(ctx, withRequest(&audit.Action{Msg: "token.requested", Actor: p.Name, TokenRequestID: req.ID, Reason: req.Purpose, Outcome: "success"}, req))
	s.record(ctx, withRequest(&audit.Action{Msg: "token.approved", Actor: req.DecidedBy, TokenRequestID: req.ID, Reason: req.Reason, Outcome: "success"}, req))
	s.publishRequest(notify.RequestApproved, req)
	claimed, secret, tok, err := s.claim(ctx, p, req.ID)
	return claimed, secret, tok, err
}

// Approve lets a pending request be claimed, by its requester, within
// ClaimWindow. The approver gets the request back, never a secret.
func (s *Service) Approve(ctx context.Context, p Principal, id, reason string) (*store.Request, error) {
	return s.decide(ctx, p, id, reason, "approve")
}

// Deny closes a pending request.
func (s *Service) Deny(ctx context.Context, p Principal, id, reason string) (*store.Request, error) {
	return s.decide(ctx, p, id, reason, "deny")
}

func (s *Service) decide(ctx context.Context, p Principal, id, why, action string) (*store.Request, error) {
	msg := map[string]string{"approve": "token.approved", "deny": "token.denied"}[action]
	if err := lifecycle.CheckReason(why); err != nil {
		s.refused(ctx, msg, p, id, "", err)
		return nil, err
	}
	req, err := s.Requests.GetRequest(ctx, id)
	if err != nil {
		err = requestError(id, err)
		s.refused(ctx, msg, p, id, "", err)
		return nil, err
	}
	if _, err := s.authorize(ctx, action, p, map[string]any{"request": requestInput(req)}); err != nil {
		err = withStepUpHint(err, id)
		s.refused(ctx, msg, p, id, "", err)
		return nil, err
	}
	now := s.now()
	req, err = s.Requests.UpdateRequest(ctx, id, func(r *store.Request) error {
		if r.Status != store.RequestPending {
			return &lifecycle.Error{Class: lifecycle.KindConflict, Code: reason.RequestNotPending, Detail: "request " + id + " is " + Status(r, now)}
		}
		r.DecidedBy, r.DecidedAt, r.Reason = p.Name, now, why
		if action == "approve" {
			r.Status, r.ClaimBy = store.RequestApproved, now.Add(ClaimWindow)
		} else {
			r.Status = store.RequestDenied
		}
		return nil
	})
	if err != nil {
		err = requestError(id, err)
		s.refused(ctx, msg, p, id, "", err)
		return nil, err
	}
	s.record(ctx, withRequest(&audit.Action{Msg: msg, Actor: p.Name, TokenRequestID: id, Reason: why, Outcome: "success"}, req))
	s.publishRequest(map[string]string{"approve": notify.RequestApproved, "deny": notify.RequestDenied}[action], req)
	return req, nil
}

// StepUpNeeded reports whether the admin policy would refuse p's approval
// of r for want of a step-up (reason step_up_required), so a page can ask
// for the security key before the approval rather than after. It is a
// question, not an action: no action line is written.
func (s *Service) StepUpNeeded(ctx context.Context, p Principal, r *store.Request) (bool, error) {
	p.StepUp = false
	_, err := s.authorize(ctx, "approve", p, map[string]any{"request": requestInput(r)})
	var le *lifecycle.Error
	if errors.As(err, &le) {
		return slices.Contains(le.AllReasons(), reason.StepUpRequired), nil
	}
	return false, err
}

// MayDecide reports whether the admin policy would let p approve r, a
// step-up taken for granted (the console asks for the key at the
// approval itself). It is a question, not an action: no action line.
func (s *Service) MayDecide(ctx context.Context, p Principal, r *store.Request) (bool, error) {
	p.StepUp = true
	_, err := s.authorize(ctx, "approve", p, map[string]any{"request": requestInput(r)})
	var le *lifecycle.Error
	if errors.As(err, &le) {
		return false, nil
	}
	return err == nil, err
}

// Approval is what an approver's page explains about a pending request.
type Approval struct {
	// PersonNeeded names the rules of just-in-time approval the request
	// misses, asked again of the policy now, as its requester.
	PersonNeeded []string
	// Approvers are the directory's approvers other than the requester.
	Approvers []string
}

// ExplainApproval asks the admin policy why r waits for a person and who
// else may decide it. A question, not an action: no action line.
func (s *Service) ExplainApproval(ctx context.Context, p Principal, r *store.Request) (Approval, error) {
	requester := Principal{Name: r.RequestedBy, Kind: PersonKind, Groups: r.RequesterGroups}
	if r.RequestedWith != "" {
		requester.Kind, requester.TokenID = ManagementTokenKind, r.RequestedWith
	}
	asked, err := s.authorize(ctx, "request", requester, map[string]any{"request": requestInput(r)})
	var le *lifecycle.Error
	switch {
	case errors.As(err, &le):
		// The policy would refuse the request now (the directory
		// changed): its reasons are why a person must look.
		asked.PersonNeeded = le.AllReasons()
	case err != nil:
		return Approval{}, err
	}
	decided, err := s.authorize(ctx, "read", p, map[string]any{"request": requestInput(r)})
	if err != nil && !errors.As(err, &le) {
		return Approval{}, err
	}
	return Approval{PersonNeeded: asked.PersonNeeded, Approvers: decided.Approvers}, nil
}

// withStepUpHint says where to go when the policy asked for a step-up:
// only the console can take a security key's assertion.
func withStepUpHint(err error, id string) error {
	var le *lifecycle.Error
	if !errors.As(err, &le) || !slices.Contains(le.AllReasons(), reason.StepUpRequired) {
		return err
	}
	hinted := *le
	hinted.Detail += "; approving a write to a production service needs a security key: approve it in the web console, at /console/requests/" + id
	return &hinted
}

// Claim hands the requester the secret of an approved request, once.
func (s *Service) Claim(ctx context.Context, p Principal, id string) (*store.Request, string, *store.Token, error) {
	req, err := s.Requests.GetRequest(ctx, id)
	if err != nil {
		err = requestError(id, err)
		s.refused(ctx, "token.claimed", p, id, "", err)
		return nil, "", nil, err
	}
	if _, err := s.authorize(ctx, "claim", p, map[string]any{"request": requestInput(req)}); err != nil {
		s.refused(ctx, "token.claimed", p, id, "", err)
		return nil, "", nil, err
	}
	return s.claim(ctx, p, id)
}

func (s *Service) claim(ctx context.Context, p Principal, id string) (*store.Request, string, *store.Token, error) {
	now := s.now()
	req, err := s.Requests.GetRequest(ctx, id)
	if err == nil {
		err = claimable(req, now)
	}
	if err != nil {
		err = requestError(id, err)
		s.refused(ctx, "token.claimed", p, id, "", err)
		return nil, "", nil, err
	}
	// A request's spec never changes after it is made, so the token can be
	// built from this read; the status is checked again inside the claim.
	notBefore := now
	if req.NotBefore.After(now) {
		notBefore = req.NotBefore
	}
	tok := &store.Token{
		Owner: req.Owner, Purpose: req.Purpose,
		Scopes: req.Scopes, Services: req.Services, CIDRs: req.CIDRs,
		NotBefore: notBefore, ExpiresAt: notBefore.Add(req.TTL), MaxUses: req.MaxUses, RateLimit: req.RateLimit,
		CreatedAt: now, CreatedBy: req.RequestedBy, ApprovedBy: req.DecidedBy,
		// The secret goes to the verified claimer, whom the admin policy
		// has just matched to the requester: the owner is only a name.
		// Their groups as of this claim go with it, so a management token
		// is judged as the person who holds it.
		HeldBy: p.Name, HolderGroups: slices.Clone(p.Groups),
	}
	secret := s.Tokens.Mint(tok)
	req, err = s.Requests.ClaimRequest(ctx, id, func(r *store.Request) error {
		if err := claimable(r, now); err != nil {
			return err
		}
		r.Status, r.ClaimedAt, r.TokenID = store.RequestClaimed, now, tok.ID
		return nil
	}, tok)
	if err != nil {
		err = requestError(id, err)
		s.refused(ctx, "token.claimed", p, id, "", err)
		return nil, "", nil, err
	}
	s.record(ctx, withToken(&audit.Action{Msg: "token.claimed", Actor: p.Name, TokenRequestID: id, TokenID: tok.ID, Reason: req.Purpose, Outcome: "success"}, tok))
	return req, secret, tok, nil
}

// claimable says why a request cannot be claimed now, if it cannot.
func claimable(r *store.Request, now time.Time) error {
	switch st := Status(r, now); st {
	case store.RequestApproved:
		return nil
	case store.RequestClaimed, "lapsed":
		code := reason.RequestClaimed
		if st != store.RequestClaimed {
			code = reason.RequestLapsed
		}
		return &lifecycle.Error{Class: lifecycle.KindGone, Code: code, Detail: "request " + r.ID + " is " + st + " and can no longer be claimed"}
	default:
		return &lifecycle.Error{Class: lifecycle.KindConflict, Code: reason.RequestNotApproved, Detail: "request " + r.ID + " is " + st}
	}
}

// Status is a request's state as people see it: the stored status, or
// "lapsed" for an approved request nobody claimed in time (or whose lapse
// a node already recorded and announced).
func Status(r *store.Request, now time.Time) string {
	if r.Status == store.RequestApproved && (!now.Before(r.ClaimBy) || !r.LapsedAt.IsZero()) {
		return "lapsed"
	}
	return r.Status
}

// ListRequests returns requests in a state ("" for all).
func (s *Service) ListRequests(ctx context.Context, p Principal, state string) ([]*store.Request, error) {
	if _, err := s.authorize(ctx, "read", p, nil); err != nil {
		return nil, err
	}
	stored := state
	if state == "lapsed" {
		stored = store.RequestApproved
	}
	all, err := s.Requests.ListRequests(ctx, stored)
	if err != nil {
		return nil, err
	}
	now := s.now()
	return slices.DeleteFunc(all, func(r *store.Request) bool { return state != "" && Status(r, now) != state }), nil
}

// GetRequest returns one request.
func (s *Service) GetRequest(ctx context.Context, p Principal, id string) (*store.Request, error) {
	if _, err := s.authorize(ctx, "read", p, nil); err != nil {
		return nil, err
	}
	r, err := s.Requests.GetRequest(ctx, id)
	return r, requestError(id, err)
}

// Issue creates a token directly, for the local operator, within the
// admin policy's bounds.
func (s *Service) Issue(ctx context.Context, p Principal, spec lifecycle.Spec) (string, *store.Token, error) {
	rec, err := s.Tokens.Validate(spec)
	if err != nil {
		s.refused(ctx, "token.issued", p, "", "", err)
		return "", nil, err
	}
	req := &store.Request{Owner: rec.Owner, Purpose: rec.Purpose, Scopes: rec.Scopes, Services: rec.Services,
		CIDRs: rec.CIDRs, TTL: rec.ExpiresAt.Sub(rec.NotBefore), MaxUses: rec.MaxUses, RateLimit: rec.RateLimit, RequestedBy: p.Name, Ticket: spec.Ticket}
	if _, err := s.authorize(ctx, "issue", p, map[string]any{"request": requestInput(req)}); err != nil {
		s.refused(ctx, "token.issued", p, "", "", err)
		return "", nil, err
	}
	secret, t, err := s.Tokens.Issue(ctx, p.Name, spec)
	if err != nil {
		s.refused(ctx, "token.issued", p, "", "", err)
		return "", nil, err
	}
	s.record(ctx, withToken(&audit.Action{Msg: "token.issued", Actor: p.Name, TokenID: t.ID, Reason: t.Purpose, Outcome: "success"}, t))
	return secret, t, nil
}

// Revoke ends a token, if the policy lets p.
func (s *Service) Revoke(ctx context.Context, p Principal, id, reason string) (*store.Token, error) {
	t, err := s.Tokens.Get(ctx, id)
	if err != nil {
		s.refused(ctx, "token.revoked", p, "", id, err)
		return nil, err
	}
	if _, err := s.authorize(ctx, "revoke", p, map[string]any{"token": tokenInput(t)}); err != nil {
		s.refusedOn(ctx, "token.revoked", p, t, err)
		return nil, err
	}
	revoked, changed, err := s.Tokens.Revoke(ctx, p.Name, id, reason)
	if err != nil {
		s.refused(ctx, "token.revoked", p, "", id, err)
		return nil, err
	}
	s.stopped(ctx, "token.revoked", p.Name, id, reason, revoked, changed)
	s.publishToken(notify.TokenRevoked, revoked)
	return revoked, nil
}

// Rotate gives a token a new secret, if the policy lets p.
func (s *Service) Rotate(ctx context.Context, p Principal, id string, grace time.Duration) (string, *store.Token, error) {
	return s.rotate(ctx, p, id, grace, "")
}

// rotate is Rotate with the reason p stated ("" for none), for the line.
func (s *Service) rotate(ctx context.Context, p Principal, id string, grace time.Duration, stated string) (string, *store.Token, error) {
	t, err := s.Tokens.Get(ctx, id)
	if err != nil {
		s.refused(ctx, "token.rotated", p, "", id, err)
		return "", nil, err
	}
	if _, err := s.authorize(ctx, "rotate", p, map[string]any{"token": tokenInput(t)}); err != nil {
		s.refusedOn(ctx, "token.rotated", p, t, err)
		return "", nil, err
	}
	r, err := s.Tokens.Rotate(ctx, p.Name, p.Groups, id, grace)
	if err != nil {
		s.refused(ctx, "token.rotated", p, "", id, err)
		return "", nil, err
	}
	s.rotated(ctx, p, id, stated, r)
	return r.Secret, r.Next, nil
}

// RotateBecause is Rotate with the reason p gave, written on the action
// line (the console asks for one).
func (s *Service) RotateBecause(ctx context.Context, p Principal, id string, grace time.Duration, reason string) (string, *store.Token, error) {
	if err := lifecycle.CheckReason(reason); err != nil {
		s.refused(ctx, "token.rotated", p, "", id, err)
		return "", nil, err
	}
	return s.rotate(ctx, p, id, grace, reason)
}

// ListTokens returns the inventory, if the policy lets p read it.
func (s *Service) ListTokens(ctx context.Context, p Principal, f store.Filter, state string) ([]*store.Token, error) {
	if _, err := s.authorize(ctx, "read", p, nil); err != nil {
		return nil, err
	}
	return s.Tokens.List(ctx, f, state)
}

// GetToken returns one token, if the policy lets p read it.
func (s *Service) GetToken(ctx context.Context, p Principal, id string) (*store.Token, error) {
	t, err := s.Tokens.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, "read", p, map[string]any{"token": tokenInput(t)}); err != nil {
		return nil, err
	}
	return t, nil
}

// Bootstrap creates the first two management tokens, for two different
// people: one that may request, one that may approve. It works only while
// no management token exists.
func (s *Service) Bootstrap(ctx context.Context, p Principal, requester, approver string, ttl time.Duration) (map[string]string, []*store.Token, error) {
	return s.bootstrap(ctx, p, requester, approver, ttl, "", func(toks []*store.Token) error {
		err := s.Requests.CreateFirst(ctx, ManagementService, toks)
		if errors.Is(err, store.ErrConflict) {
			err = &lifecycle.Error{Class: lifecycle.KindConflict, Code: reason.AlreadyBootstrapped,
				Detail: "management tokens exist already; new ones go through request and approval"}
			s.refused(ctx, "token.bootstrap", p, "", "", err)
		}
		return err
	})
}

// BreakGlass creates a new pair of management tokens as Bootstrap does,
// though management tokens exist: for when their secrets are lost, for the
// two people of the confirmed recovery rec. The admin policy decides as
// for bootstrap; the recovery's id and reason go into each token's
// token.bootstrap line, and a break_glass.confirmed line follows them.
// The caller has made the operator prove more than reaching the admin
// endpoint (package breakglass).
func (s *Service) BreakGlass(ctx context.Context, p Principal, rec breakglass.Recovery, ttl time.Duration) (map[string]string, []*store.Token, error) {
	why := "break-glass " + rec.ID + " (" + rec.Reason + "): "
	secrets, toks, err := s.bootstrap(ctx, p, rec.Requester, rec.Approver, ttl, why, func(toks []*store.Token) error {
		for _, t := range toks {
			if err := s.Tokens.Store.Create(ctx, t); err != nil {
				return fmt.Errorf("storing token: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	s.record(ctx, &audit.Action{Msg: "break_glass.confirmed", Actor: p.Name, Outcome: "success",
		Reason: fmt.Sprintf("%s: issued %s and %s", rec.ID, toks[0].ID, toks[1].ID)})
	return secrets, toks, nil
}

// bootstrap makes the requester's and the approver's management tokens,
// asks the admin policy (action bootstrap), stores them with create and
// writes their token.bootstrap lines, each reason prefixed with why.
func (s *Service) bootstrap(ctx context.Context, p Principal, requester, approver string, ttl time.Duration, why string, create func([]*store.Token) error) (map[string]string, []*store.Token, error) {
	// The names reach the policy input and the audit trail, so they are
	// checked before either sees them.
	for _, f := range [][2]string{{"requester", requester}, {"approver", approver}} {
		if err := lifecycle.CheckText(f[0], f[1]); err != nil {
			s.refused(ctx, "token.bootstrap", p, "", "", err)
			return nil, nil, err
		}
	}
	extra := map[string]any{"bootstrap": map[string]any{"requester": requester, "approver": approver}}
	if _, err := s.authorize(ctx, "bootstrap", p, extra); err != nil {
		s.refused(ctx, "token.bootstrap", p, "", "", err)
		return nil, nil, err
	}
	var toks []*store.Token
	secrets := map[string]string{}
	for _, who := range []struct{ name, scope string }{{requester, "tokens:request"}, {approver, "tokens:approve"}} {
		rec, err := s.Tokens.Validate(lifecycle.Spec{
			Owner: who.name, Purpose: "bootstrap management token (" + who.scope + ")",
			Scopes: []string{who.scope, "tokens:read"}, Services: []string{ManagementService}, TTL: ttl.String(),
		})
		if err != nil {
			s.refused(ctx, "token.bootstrap", p, "", "", err)
			return nil, nil, err
		}
		secret := s.Tokens.Mint(rec)
		// Each secret is handed to the person its token names, who holds
		// it from then on; the operator only passes it along.
		rec.CreatedBy, rec.ApprovedBy, rec.HeldBy = p.Name, p.Name, who.name
		secrets[rec.ID] = secret
		toks = append(toks, rec)
	}
	if err := create(toks); err != nil {
		return nil, nil, err
	}
	for _, t := range toks {
		s.record(ctx, withToken(&audit.Action{Msg: "token.bootstrap", Actor: p.Name, TokenID: t.ID, Reason: why + t.Purpose + " for " + t.Owner, Outcome: "success"}, t))
	}
	return secrets, toks, nil
}

func requestError(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &lifecycle.Error{Class: lifecycle.KindNotFound, Code: reason.RequestNotFound, Detail: "no request " + cmp.Or(lifecycle.SafeID(id), "with that id")}
	}
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Report builds the hygiene report, if the policy lets p read.
func (s *Service) Report(ctx context.Context, p Principal, unusedFor time.Duration) (report.Report, error) {
	toks, err := s.ListTokens(ctx, p, store.Filter{}, "")
	if err != nil {
		return report.Report{}, err
	}
	now := s.Now()
	return report.Build(toks, now, unusedFor, func(t *store.Token) bool { return lifecycle.Inactive(t, now) == "" }), nil
}

// Check dry-runs the gateway policy for a stored token and a described
// call, without consuming a use or writing a gateway audit line. With
// engine nil the running policy answers; callers may pass another engine
// to try a policy change against real token metadata.
func (s *Service) Check(ctx context.Context, p Principal, tokenID string, req policy.Request, service string, engine *policy.Engine) (policy.Decision, error) {
	t, err := s.GetToken(ctx, p, tokenID)
	if err != nil {
		return policy.Decision{}, err
	}
	if engine == nil {
		engine = s.Policy
	}
	return gateway.DryRun(ctx, engine, t, req, service, s.Now())
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

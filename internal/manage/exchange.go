package manage

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/textcheck"
	"github.com/tokengate/caddy-tokengate/store"
)

// ExchangeTTL is the longest life of a token exchanged for a workload, and
// the life it gets unless the admin policy's decision names a shorter
// one: a CI job needs the token for the minutes it runs, and can exchange
// again.
const ExchangeTTL = 15 * time.Minute

// WorkloadPrincipal names a verified workload as the holder of its
// tokens: "workload:<configured issuer name>:<principal claim>", e.g.
// workload:github:repo:octo/app:ref:refs/heads/main. The prefix keeps a
// workload from ever being taken for a person or a management token's
// holder whose name happens to equal its subject (the admin policy
// reserves it for workloads), and the issuer name keeps two CI platforms
// that use the same subject apart.
func WorkloadPrincipal(issuer, subject string) string {
	return "workload:" + issuer + ":" + subject
}

// Subject is the credential an exchange spends: the hash of the
// workload's subject token and when that token expires. A subject token
// is exchanged once: the store remembers its hash until it expires, on
// every node, so a token copied from a job's logs gets nothing more.
type Subject struct {
	Hash    []byte
	Expires time.Time
}

// subjectMemory is how long past its exp a subject token is remembered
// (verifiers allow some clock skew), and how long one without exp is.
const (
	subjectLeeway        = 5 * time.Minute
	subjectWithoutExpiry = 24 * time.Hour
)

// Exchange hands a workload, verified by its OIDC token, a token for one
// service, if the admin policy (action "exchange") lets it have those
// scopes there, once per subject token. Nothing is stored but the token record: there is no
// request to approve or claim, and the secret goes only to the workload,
// which owns and holds it. p must be a verified workload (Kind
// WorkloadKind, Issuer the configured workload's name, Claims its token's
// claims, Subject the subject token it presented).
func (s *Service) Exchange(ctx context.Context, p Principal, scopes []string, service string) (string, *store.Token, error) {
	workload := workloadOf(p)
	refused := func(err error) error {
		s.exchangeRefused(ctx, p, workload, err)
		return err
	}
	if p.Kind != WorkloadKind || p.Name == "" {
		return "", nil, refused(&lifecycle.Error{Class: lifecycle.KindForbidden, Code: reason.NotAWorkload, Detail: "only a verified workload may exchange its token"})
	}
	ttl := ExchangeTTL
	if s.Tokens.MaxTTL > 0 {
		ttl = min(ttl, s.Tokens.MaxTTL)
	}
	rec, err := s.Tokens.ValidateVerified(lifecycle.Spec{
		Owner: p.Name, Purpose: "token exchange by " + p.Issuer + " workload " + p.Name,
		Scopes: scopes, Services: []string{service}, TTL: ttl.String(),
	})
	if err != nil {
		return "", nil, refused(err)
	}
	req := &store.Request{Owner: rec.Owner, Purpose: rec.Purpose, Scopes: rec.Scopes, Services: rec.Services,
		TTL: ttl, RequestedBy: p.Name}
	input := requestInput(req) // held_by: the requester, here the workload
	d, err := s.authorize(ctx, "exchange", p, map[string]any{"request": input})
	if err != nil {
		// The trail keeps every reason the policy gave, not only the first.
		s.exchangeRefused(ctx, p, workload, err, d.Reasons...)
		return "", nil, err
	}
	// The policy may grant less time than asked, never more.
	if d.TTL > 0 && d.TTL < ttl {
		ttl = d.TTL.Truncate(time.Second)
		if ttl <= 0 {
			return "", nil, refused(&lifecycle.Error{Class: lifecycle.KindForbidden, Code: reason.TTLTooShort, Detail: "the admin policy grants less than a second"})
		}
	}
	rec.ExpiresAt = rec.NotBefore.Add(ttl)
	// The shipped rules give every exchanged token a rate limit.
	rec.RateLimit = d.RateLimit
	rec.CreatedBy, rec.HeldBy, rec.ApprovedBy = p.Name, p.Name, "policy:exchange"
	// Spent only once everything else allowed the exchange, so a refused
	// attempt leaves the job free to ask again for what it may have.
	if err := s.spend(ctx, p.Subject); err != nil {
		return "", nil, refused(err)
	}
	secret, err := s.Tokens.Create(ctx, rec)
	if err != nil {
		return "", nil, err
	}
	a := withToken(&audit.Action{Msg: "token.exchanged", Actor: p.Name, TokenID: rec.ID, Reason: rec.Purpose, Outcome: "success"}, rec)
	a.HeldBy, a.Workload = rec.HeldBy, workload
	s.record(ctx, a)
	return secret, rec, nil
}

// ExchangeRefused writes the audit line of an exchange refused with r
// before the workload was verified (a malformed request, an untrusted or
// expired subject token): the actor is then unknown, and named
// "anonymous".
func (s *Service) ExchangeRefused(ctx context.Context, r *reason.Refusal) {
	s.record(ctx, &audit.Action{Msg: "token.exchanged", Actor: "anonymous", Reason: r.Detail, Outcome: "refused", Reasons: []string{r.Code}})
}

// spend records subject as exchanged, or refuses it when it was before.
func (s *Service) spend(ctx context.Context, subject Subject) error {
	if len(subject.Hash) == 0 {
		return errors.New("exchange without a subject token")
	}
	now := s.now()
	until := now.Add(subjectWithoutExpiry)
	if !subject.Expires.IsZero() {
		until = subject.Expires.Add(subjectLeeway)
	}
	err := s.Tokens.Store.MarkUsed(ctx, subject.Hash, until, now)
	if errors.Is(err, store.ErrConflict) {
		return &lifecycle.Error{Class: lifecycle.KindConflict, Code: reason.SubjectTokenUsed,
			Detail: "this subject token was exchanged already: ask the platform for a new one"}
	}
	return err
}

// ExchangeThrottled writes the line of exchange attempts refused because
// too many came from one client address (addr, for IPv6 its /64): the
// first refusal of a window, with refused 1, or the summary of the
// refusals counted after it, which got no line of their own.
func (s *Service) ExchangeThrottled(ctx context.Context, addr, msg string, refused int) {
	s.record(ctx, &audit.Action{Msg: "token.exchanged", Actor: "anonymous", Reason: msg, Outcome: "refused",
		Reasons: []string{reason.RateLimited}, ClientIP: addr, RefusedCount: refused})
}

func (s *Service) exchangeRefused(ctx context.Context, p Principal, w *audit.Workload, err error, reasons ...string) {
	var e *lifecycle.Error
	var pe *PolicyError
	code, msg := reason.ExchangeFailed, "the exchange failed"
	if errors.As(err, &e) {
		code, msg = e.Code, e.Detail
	} else if errors.As(err, &pe) {
		// A policy that cannot decide is the operator's problem, logged
		// where they look; the audit trail records that nothing was issued.
		code, msg = reason.PolicyUnavailable, "the admin policy could not decide"
	}
	if len(reasons) == 0 || errors.As(err, &pe) {
		reasons = []string{code}
	}
	s.record(ctx, &audit.Action{Msg: "token.exchanged", Actor: cmp.Or(p.Name, "anonymous"), Reason: msg,
		Outcome: "refused", Reasons: reasons, Workload: w})
}

// workloadClaims are the claims an exchange's audit line carries: the
// ones GitHub Actions, GitLab CI and Kubernetes use to name a job or a
// service account. Other claims stay out of the trail: they may name
// people, and the trail needs only what tells one job from another.
var workloadClaims = []string{
	"repository", "repository_owner", "ref", "ref_type", "environment", "workflow", "job_workflow_ref", "sha",
	"run_id", "actor", "project_path", "namespace_path", "pipeline_source", "user_login",
}

// maxClaimLen bounds one claim value in the audit line.
const maxClaimLen = 256

// workloadOf is the audit view of a verified workload: its issuer's name
// and the string claims that name it, each acceptable text and short.
func workloadOf(p Principal) *audit.Workload {
	if p.Kind != WorkloadKind {
		return nil
	}
	w := &audit.Workload{Issuer: cmp.Or(p.Issuer, "unknown"), Claims: map[string]string{}}
	keep := func(name string, v any) {
		if s, ok := v.(string); ok && s != "" && len(s) <= maxClaimLen && textcheck.Check(s) == nil {
			w.Claims[name] = s
		}
	}
	for _, name := range workloadClaims {
		keep(name, p.Claims[name])
	}
	// Kubernetes nests the service account: {"kubernetes.io":
	// {"namespace": ..., "serviceaccount": {"name": ...}}}.
	if k8s, ok := p.Claims["kubernetes.io"].(map[string]any); ok {
		keep("kubernetes.io/namespace", k8s["namespace"])
		if sa, ok := k8s["serviceaccount"].(map[string]any); ok {
			keep("kubernetes.io/serviceaccount", sa["name"])
		}
	}
	return w
}

package manage

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
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

// Exchange hands a workload, verified by its OIDC token, a token for one
// service, if the admin policy (action "exchange") lets it have those
// scopes there. Nothing is stored but the token record: there is no
// request to approve or claim, and the secret goes only to the workload,
// which owns and holds it. p must be a verified workload (Kind
// WorkloadKind, Issuer the configured workload's name, Claims its token's
// claims).
func (s *Service) Exchange(ctx context.Context, p Principal, scopes []string, service string) (string, *store.Token, error) {
	workload := workloadOf(p)
	refused := func(err error) error {
		s.exchangeRefused(ctx, p, workload, err)
		return err
	}
	if p.Kind != WorkloadKind || p.Name == "" {
		return "", nil, refused(&lifecycle.Error{Kind: lifecycle.KindForbidden, Code: "not_a_workload", Msg: "only a verified workload may exchange its token"})
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
			return "", nil, refused(&lifecycle.Error{Kind: lifecycle.KindForbidden, Code: "ttl_too_short", Msg: "the admin policy grants less than a second"})
		}
	}
	rec.ExpiresAt = rec.NotBefore.Add(ttl)
	rec.CreatedBy, rec.HeldBy, rec.ApprovedBy = p.Name, p.Name, "policy:exchange"
	secret, err := s.Tokens.Create(ctx, rec)
	if err != nil {
		return "", nil, err
	}
	a := lifecycle.WithToken(&audit.Action{Msg: "token.exchanged", Actor: p.Name, TokenID: rec.ID, Reason: rec.Purpose, Outcome: "success"}, rec)
	a.HeldBy, a.Workload = rec.HeldBy, workload
	s.Audit.ActionContext(ctx, a)
	return secret, rec, nil
}

// ExchangeRefused writes the audit line of an exchange refused before the
// workload was verified (a malformed request, an untrusted or expired
// subject token): the actor is then unknown, and named "anonymous".
func (s *Service) ExchangeRefused(ctx context.Context, code, msg string) {
	s.Audit.ActionContext(ctx, &audit.Action{Msg: "token.exchanged", Actor: "anonymous", Reason: msg, Outcome: "refused", Reasons: []string{code}})
}

func (s *Service) exchangeRefused(ctx context.Context, p Principal, w *audit.Workload, err error, reasons ...string) {
	var e *lifecycle.Error
	var pe *PolicyError
	code, msg := "exchange_failed", "the exchange failed"
	if errors.As(err, &e) {
		code, msg = e.Code, e.Msg
	} else if errors.As(err, &pe) {
		// A policy that cannot decide is the operator's problem, logged
		// where they look; the audit trail records that nothing was issued.
		code, msg = "policy_unavailable", "the admin policy could not decide"
	}
	if len(reasons) == 0 || errors.As(err, &pe) {
		reasons = []string{code}
	}
	s.Audit.ActionContext(ctx, &audit.Action{Msg: "token.exchanged", Actor: cmp.Or(p.Name, "anonymous"), Reason: msg,
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

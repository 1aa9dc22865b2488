package manage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// exchangePolicy is an admin policy that allows an exchange only when the
// input is exactly what Exchange promises the policy: so these tests
// prove the input's shape, while the shipped rules are tested in
// policies/admin_test.rego. It grants 5 minutes to refs/heads/short, and
// a broken ttl to refs/heads/broken.
const exchangePolicy = `package tokengate.admin

default decision := {"allow": false, "reasons": ["policy_undefined"]}

decision := {"allow": count(denials) == 0, "reasons": denials, "ttl_seconds": ttl, "rate_limit": rate}

default ttl := 900

default rate := {}

rate := {"requests": 30, "window": "1m"} if input.actor.claims.ref == "refs/heads/limited"

ttl := 300 if input.actor.claims.ref == "refs/heads/short"

# A string the type checker cannot see at load (a typed "soon" would
# make the policy refused at load): the engine must fail closed on it.
ttl := json.unmarshal(` + "`" + `"soon"` + "`" + `) if input.actor.claims.ref == "refs/heads/broken"

denials contains "action_unknown" if input.action != "exchange"

denials contains "input_unexpected" if not expected_input

expected_input if {
	input.actor.kind == "workload"
	input.actor.issuer == "github"
	input.actor.groups == []
	input.actor.scopes == []
	input.actor.local == false
	p := input.actor.principal
	input.request.owner == p
	input.request.requested_by == p
	input.request.held_by == p
	input.request.ticket == ""
	input.request.cidrs == []
	input.request.max_uses == 0
	input.request.ttl_seconds == 900
	input.request.purpose == sprintf("token exchange by github workload %s", [p])
	count(input.request.services) == 1
}

denials contains "no_directory_entry" if input.actor.claims.repository != "octo/app"

denials contains "destructive_scope" if {
	some s in input.request.scopes
	endswith(s, ":delete")
}
`

func exchangeFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	gw, err := fs.ReadFile(policies.FS, "gateway.rego")
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.NewEngine(fstest.MapFS{
		"gateway.rego": {Data: gw},
		"admin.rego":   {Data: []byte(exchangePolicy)},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Policy = engine
	return f
}

func ciJob(ref string) Principal {
	return Principal{
		Name: "repo:octo/app:ref:" + ref, Kind: WorkloadKind, Issuer: "github",
		Claims: map[string]any{
			"sub": "repo:octo/app:ref:" + ref, "repository": "octo/app", "ref": ref, "workflow": "deploy",
			"run_id": "4242", "jti": "j-1", "aud": "https://gw.example.com", "actor_id": float64(7),
		},
	}
}

func TestExchangeIssuesAWorkloadHeldToken(t *testing.T) {
	f := exchangeFixture(t)
	job := ciJob("refs/heads/main")
	secret, tok, err := f.svc.Exchange(context.Background(), presenting(job, newSubject()), []string{"billing:read"}, "billing")
	if err != nil {
		t.Fatal(err)
	}
	stored := f.lookup(t, secret)
	if stored.ID != tok.ID || stored.Owner != job.Name || stored.HeldBy != job.Name || stored.CreatedBy != job.Name ||
		stored.ApprovedBy != "policy:exchange" || stored.MaxUses != 0 || len(stored.CIDRs) != 0 {
		t.Fatalf("stored token %+v", stored)
	}
	if got := stored.ExpiresAt.Sub(stored.NotBefore); got != ExchangeTTL {
		t.Errorf("lifetime %s, want %s", got, ExchangeTTL)
	}
	lines := f.lines()
	if len(lines) != 1 || lines[0]["msg"] != "token.exchanged" || lines[0]["outcome"] != "success" ||
		lines[0]["token_id"] != tok.ID || lines[0]["held_by"] != job.Name || lines[0]["actor"] != job.Name {
		t.Fatalf("audit lines %v", lines)
	}
	w, _ := lines[0]["workload"].(map[string]any)
	claims, _ := w["claims"].(map[string]any)
	if w["issuer"] != "github" || claims["repository"] != "octo/app" || claims["ref"] != "refs/heads/main" ||
		claims["run_id"] != "4242" || claims["jti"] != nil || claims["aud"] != nil {
		t.Errorf("workload in the audit line: %v", w)
	}
	if strings.Contains(fmt.Sprint(lines), secret[3:33]) {
		t.Error("the secret is in the audit line")
	}
}

// The exchanged token carries the rate limit the admin policy gives it,
// and none when the policy gives none.
func TestExchangeTakesThePolicysRateLimit(t *testing.T) {
	f := exchangeFixture(t)
	for ref, want := range map[string]store.RateLimit{
		"refs/heads/limited": {Requests: 30, Window: time.Minute},
		"refs/heads/main":    {},
	} {
		secret, _, err := f.svc.Exchange(context.Background(), presenting(ciJob(ref), newSubject()), []string{"billing:read"}, "billing")
		if err != nil {
			t.Fatal(err)
		}
		if got := f.lookup(t, secret).RateLimit; got != want {
			t.Errorf("%s: stored rate limit %+v, want %+v", ref, got, want)
		}
	}
}

func TestExchangeTakesThePolicysShorterTTL(t *testing.T) {
	f := exchangeFixture(t)
	_, tok, err := f.svc.Exchange(context.Background(), presenting(ciJob("refs/heads/short"), newSubject()), []string{"billing:read"}, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.ExpiresAt.Sub(tok.NotBefore); got != 5*time.Minute {
		t.Errorf("lifetime %s, want the policy's 5m", got)
	}
}

func TestExchangeAsksNoMoreThanMaxTTL(t *testing.T) {
	f := exchangeFixture(t)
	f.svc.Tokens.MaxTTL = 10 * time.Minute
	_, tok, err := f.svc.Exchange(context.Background(), presenting(ciJob("refs/heads/main"), newSubject()), []string{"billing:read"}, "billing")
	// The policy sees ttl_seconds 600, not 900, and this one refuses that.
	wantKind(t, err, lifecycle.KindForbidden, "input_unexpected")
	if tok != nil {
		t.Fatal("a token was issued")
	}
}

func TestExchangeRefusals(t *testing.T) {
	cases := []struct {
		name    string
		who     Principal
		scopes  []string
		service string
		kind    lifecycle.Kind
		code    string
	}{
		{"destructive scope", ciJob("refs/heads/main"), []string{"billing:delete"}, "billing", lifecycle.KindForbidden, "destructive_scope"},
		{"no directory entry", func() Principal {
			p := ciJob("refs/heads/main")
			p.Claims["repository"] = "evil/fork"
			return p
		}(), []string{"billing:read"}, "billing", lifecycle.KindForbidden, "no_directory_entry"},
		{"malformed scope", ciJob("refs/heads/main"), []string{"billing"}, "billing", lifecycle.KindInvalid, "scope_invalid"},
		{"no scope", ciJob("refs/heads/main"), nil, "billing", lifecycle.KindInvalid, "scope_invalid"},
		{"malformed service", ciJob("refs/heads/main"), []string{"billing:read"}, "bill ing", lifecycle.KindInvalid, "service_invalid"},
		{"a person", Principal{Name: "ann", Kind: PersonKind}, []string{"billing:read"}, "billing", lifecycle.KindForbidden, "not_a_workload"},
		{"a management token", alice, []string{"billing:read"}, "billing", lifecycle.KindForbidden, "not_a_workload"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := exchangeFixture(t)
			secret, tok, err := f.svc.Exchange(context.Background(), presenting(c.who, newSubject()), c.scopes, c.service)
			wantKind(t, err, c.kind, c.code)
			if secret != "" || tok != nil {
				t.Fatal("a refused exchange returned a token")
			}
			f.refusedLine(t, "token.exchanged", c.code)
			if toks, _ := f.store.List(context.Background(), store.Filter{}); len(toks) != 0 {
				t.Fatalf("a refused exchange stored %d tokens", len(toks))
			}
		})
	}
}

// A policy answering a ttl that is not a number cannot decide: nothing is
// issued, and the trail says the policy failed.
func TestExchangeFailsClosedOnABrokenPolicyTTL(t *testing.T) {
	f := exchangeFixture(t)
	_, tok, err := f.svc.Exchange(context.Background(), presenting(ciJob("refs/heads/broken"), newSubject()), []string{"billing:read"}, "billing")
	var pe *PolicyError
	if !errors.As(err, &pe) || tok != nil {
		t.Fatalf("got %v, %v; want a policy error and no token", tok, err)
	}
	f.refusedLine(t, "token.exchanged", "policy_unavailable")
}

// Only string claims from the list reach the audit trail, and none that
// is not acceptable text (a control character, a pasted secret).
func TestWorkloadAuditViewKeepsOnlyNamingClaims(t *testing.T) {
	w := workloadOf(Principal{Kind: WorkloadKind, Issuer: "kubernetes", Claims: map[string]any{
		"kubernetes.io": map[string]any{"namespace": "ci", "serviceaccount": map[string]any{"name": "deployer", "uid": "u-1"}},
		"environment":   "prod\x1b[31m",
		"ref":           "refs/heads/" + token.NewSecret(),
		"repository":    []any{"not", "a", "string"},
		"email":         "someone@example.com",
	}})
	want := map[string]string{"kubernetes.io/namespace": "ci", "kubernetes.io/serviceaccount": "deployer"}
	if w.Issuer != "kubernetes" || fmt.Sprint(w.Claims) != fmt.Sprint(want) {
		t.Fatalf("workload view %+v, want claims %v", w, want)
	}
}

// The trail keeps every reason the policy refused with; the error names
// the first.
func TestExchangeRefusalKeepsEveryReason(t *testing.T) {
	f := exchangeFixture(t)
	p := ciJob("refs/heads/main")
	p.Claims["repository"] = "evil/fork"
	_, _, err := f.svc.Exchange(context.Background(), presenting(p, newSubject()), []string{"billing:delete"}, "billing")
	wantKind(t, err, lifecycle.KindForbidden, "destructive_scope")
	lines := f.lines()
	if len(lines) != 1 || !slices.Equal(anyStrings(lines[0]["reasons"]), []string{"destructive_scope", "no_directory_entry"}) {
		t.Fatalf("audit lines %v", lines)
	}
}

// Without a max_ttl (0, no cap) an exchange still asks for 15 minutes.
func TestExchangeWithoutMaxTTL(t *testing.T) {
	f := exchangeFixture(t)
	f.svc.Tokens.MaxTTL = 0
	_, tok, err := f.svc.Exchange(context.Background(), presenting(ciJob("refs/heads/main"), newSubject()), []string{"billing:read"}, "billing")
	if err != nil || tok.ExpiresAt.Sub(tok.NotBefore) != ExchangeTTL {
		t.Fatalf("got %v, %v", tok, err)
	}
}

// newSubject is a subject token never exchanged before.
func newSubject() Subject {
	sum := sha256.Sum256([]byte(token.NewSecret()))
	return Subject{Hash: sum[:], Expires: time.Now().Add(time.Hour)}
}

// presenting is workload p presenting subject, as the exchange's
// authenticator yields it.
func presenting(p Principal, subject Subject) Principal {
	p.Subject = subject
	return p
}

// A subject token is exchanged once: a second exchange with it, even for
// something else, is refused and audited; a refused first attempt does not
// spend it.
func TestSubjectTokenIsExchangedOnce(t *testing.T) {
	f := exchangeFixture(t)
	job, subject := ciJob("refs/heads/main"), newSubject()
	if _, _, err := f.svc.Exchange(context.Background(), presenting(job, subject), []string{"billing:delete"}, "billing"); err == nil {
		t.Fatal("a delete scope was exchanged")
	}
	if _, _, err := f.svc.Exchange(context.Background(), presenting(job, subject), []string{"billing:read"}, "billing"); err != nil {
		t.Fatalf("first allowed exchange after a refused one: %v", err)
	}
	f.lines()
	_, _, err := f.svc.Exchange(context.Background(), presenting(job, subject), []string{"billing:read"}, "billing")
	wantKind(t, err, lifecycle.KindConflict, "subject_token_used")
	lines := f.lines()
	if len(lines) != 1 || lines[0]["msg"] != "token.exchanged" || lines[0]["outcome"] != "refused" ||
		!slices.Equal(anyStrings(lines[0]["reasons"]), []string{"subject_token_used"}) {
		t.Fatalf("lines %v", lines)
	}
}

package manage

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// The tests run the management flow on a temporary bolt store with the
// shipped policies and a real audit logger; only the clock is fake.

var (
	alice = Principal{Name: "alice", TokenID: "tok_alice", Scopes: []string{"tokens:request", "tokens:read"}}
	bob   = Principal{Name: "bob", TokenID: "tok_bob", Scopes: []string{"tokens:approve", "tokens:read"}}
	local = Principal{Name: "local-operator", Local: true}
)

type fixture struct {
	svc    *Service
	store  *bolt.Store
	hasher *token.Hasher
	logs   *observer.ObservedLogs
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	engine, err := policy.NewEngine(shippedWithDirectory(t, `{"groups": {"requesters": ["alice"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	al := audit.New(zap.New(core))
	f := &fixture{store: b, hasher: token.NewHasher(""), logs: logs, now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return f.now }
	f.svc = &Service{
		Tokens:   &lifecycle.Service{Store: b, Hasher: f.hasher, MaxTTL: 48 * time.Hour, Now: clock},
		Requests: b,
		Policy:   engine,
		Audit:    al,
		Now:      clock,
	}
	return f
}

// shippedWithDirectory is the shipped policy folder with directory as
// its directory data. The fixture's directory knows alice (and defines no
// approvers), so her read-only, short, bound requests are approved
// automatically, as the policy approves only principals it knows.
func shippedWithDirectory(t *testing.T, directory string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(policies.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(policies.FS, name)
		fsys[name] = &fstest.MapFile{Data: src}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fsys["tokengate/directory/data.json"] = &fstest.MapFile{Data: []byte(directory)}
	return fsys
}

// lines returns the management audit lines written since the last call,
// as msg/outcome/reasons.
func (f *fixture) lines() []map[string]any {
	var out []map[string]any
	for _, e := range f.logs.TakeAll() {
		m := e.ContextMap()
		m["msg"] = e.Message
		out = append(out, m)
	}
	return out
}

// refusedLine checks that exactly one line was written since the last
// call: msg refused with code.
func (f *fixture) refusedLine(t *testing.T, msg, code string) {
	t.Helper()
	lines := f.lines()
	if len(lines) != 1 || lines[0]["msg"] != msg || lines[0]["outcome"] != "refused" || !slices.Contains(anyStrings(lines[0]["reasons"]), code) {
		t.Fatalf("audit lines %v, want one %s refused with %s", lines, msg, code)
	}
}

func anyStrings(v any) []string {
	switch v := v.(type) {
	case []string:
		return v
	case []any:
		var out []string
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func wantKind(t *testing.T, err error, kind lifecycle.Kind, code string) {
	t.Helper()
	var e *lifecycle.Error
	if !errors.As(err, &e) || e.Class != kind || e.Code != code {
		t.Fatalf("got %v, want kind %d code %s", err, kind, code)
	}
}

func writeSpec() lifecycle.Spec {
	return lifecycle.Spec{Owner: "alice", Purpose: "nightly export", Scopes: []string{"billing:write"}, Services: []string{"billing"}, TTL: "2h"}
}

// The secret of a claimed token is the one the gateway finds it by.
func (f *fixture) lookup(t *testing.T, secret string) *store.Token {
	t.Helper()
	if err := token.Check(secret); err != nil {
		t.Fatalf("claimed secret is not a token: %v", err)
	}
	h := f.hasher.Hash(secret)
	tok, err := f.store.GetByHash(context.Background(), h[:])
	if err != nil {
		t.Fatalf("secret does not find its token: %v", err)
	}
	return tok
}

func TestRequestApproveClaim(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req, secret, tok, err := f.svc.Request(ctx, alice, writeSpec())
	if err != nil || secret != "" || tok != nil || req.Status != store.RequestPending {
		t.Fatalf("request: %v %q %v %+v; want pending without a secret", err, secret, tok, req)
	}
	if l := f.lines(); len(l) != 1 || l[0]["msg"] != "token.requested" || l[0]["token_request_id"] != req.ID {
		t.Fatalf("request lines %v", l)
	}

	approved, err := f.svc.Approve(ctx, bob, req.ID, "looks right")
	if err != nil || approved.Status != store.RequestApproved || approved.DecidedBy != "bob" || approved.TokenID != "" {
		t.Fatalf("approve: %v %+v", err, approved)
	}
	f.lines()

	// Only the requester claims.
	_, _, _, err = f.svc.Claim(ctx, Principal{Name: "mallory", Scopes: []string{"tokens:request"}}, req.ID)
	wantKind(t, err, lifecycle.KindForbidden, "not_requester")
	f.refusedLine(t, "token.claimed", "not_requester")

	claimed, secret, tok, err := f.svc.Claim(ctx, alice, req.ID)
	if err != nil || secret == "" || claimed.Status != store.RequestClaimed || claimed.TokenID != tok.ID {
		t.Fatalf("claim: %v %+v %+v", err, claimed, tok)
	}
	stored := f.lookup(t, secret)
	if stored.ID != tok.ID || stored.ApprovedBy != "bob" || stored.CreatedBy != "alice" || !slices.Equal(stored.Scopes, []string{"billing:write"}) ||
		!stored.ExpiresAt.Equal(f.now.Add(2*time.Hour)) {
		t.Fatalf("stored token %+v", stored)
	}
	if l := f.lines(); len(l) != 1 || l[0]["msg"] != "token.claimed" || l[0]["token_id"] != tok.ID {
		t.Fatalf("claim lines %v", l)
	}

	// Once.
	_, secret, _, err = f.svc.Claim(ctx, alice, req.ID)
	wantKind(t, err, lifecycle.KindGone, "request_claimed")
	if secret != "" {
		t.Fatal("a second claim returned a secret")
	}
	f.refusedLine(t, "token.claimed", "request_claimed")
}

func TestSelfApprovalIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req, _, _, err := f.svc.Request(ctx, alice, writeSpec())
	if err != nil {
		t.Fatal(err)
	}
	f.lines()
	// Alice with an approver's token still cannot approve her own request.
	aliceApprover := Principal{Name: "alice", TokenID: "tok_alice2", Scopes: []string{"tokens:approve"}}
	_, err = f.svc.Approve(ctx, aliceApprover, req.ID, "")
	wantKind(t, err, lifecycle.KindForbidden, "self_approval")
	f.refusedLine(t, "token.approved", "self_approval")
	// Nor can a requester approve anything.
	_, err = f.svc.Approve(ctx, Principal{Name: "carol", Scopes: []string{"tokens:request"}}, req.ID, "")
	wantKind(t, err, lifecycle.KindForbidden, "scope_missing")
	f.refusedLine(t, "token.approved", "scope_missing")
	if r, _ := f.store.GetRequest(ctx, req.ID); r.Status != store.RequestPending {
		t.Fatalf("request is %s after refused approvals", r.Status)
	}
	// A request holding both duties is refused outright.
	both := writeSpec()
	both.Scopes, both.Services = []string{"tokens:request", "tokens:approve"}, []string{ManagementService}
	_, _, _, err = f.svc.Request(ctx, alice, both)
	wantKind(t, err, lifecycle.KindForbidden, "duties_combined")
	f.refusedLine(t, "token.requested", "duties_combined")
}

func TestDenyAndLapse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	denied, _, _, err := f.svc.Request(ctx, alice, writeSpec())
	if err != nil {
		t.Fatal(err)
	}
	if r, err := f.svc.Deny(ctx, bob, denied.ID, "no"); err != nil || r.Status != store.RequestDenied {
		t.Fatalf("deny: %v %+v", err, r)
	}
	f.lines()
	_, _, _, err = f.svc.Claim(ctx, alice, denied.ID)
	wantKind(t, err, lifecycle.KindConflict, "request_not_approved")
	f.refusedLine(t, "token.claimed", "request_not_approved")
	_, err = f.svc.Approve(ctx, bob, denied.ID, "changed my mind")
	wantKind(t, err, lifecycle.KindConflict, "request_not_pending")
	f.refusedLine(t, "token.approved", "request_not_pending")

	lapsing, _, _, err := f.svc.Request(ctx, alice, writeSpec())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, bob, lapsing.ID, ""); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(ClaimWindow)
	if got, _ := f.svc.ListRequests(ctx, bob, "lapsed"); len(got) != 1 || got[0].ID != lapsing.ID {
		t.Fatalf("lapsed requests %v", got)
	}
	f.lines()
	_, _, _, err = f.svc.Claim(ctx, alice, lapsing.ID)
	wantKind(t, err, lifecycle.KindGone, "request_lapsed")
	f.refusedLine(t, "token.claimed", "request_lapsed")

	// An id that is not an id is neither echoed nor logged.
	_, err = f.svc.Approve(ctx, bob, "req_nothing", "")
	wantKind(t, err, lifecycle.KindNotFound, "request_not_found")
	f.refusedLine(t, "token.approved", "request_not_found")
	pasted := token.NewSecret()
	_, err = f.svc.Approve(ctx, bob, pasted, "")
	wantKind(t, err, lifecycle.KindNotFound, "request_not_found")
	if l := f.lines(); len(l) != 1 || l[0]["token_request_id"] == pasted || err.Error() == "" || errors.Unwrap(err) != nil {
		t.Fatalf("lines %v", l)
	}
}

func TestJustInTimeRequestIsClaimedAtOnce(t *testing.T) {
	f := newFixture(t)
	spec := lifecycle.Spec{Owner: "alice", Purpose: "debug", Scopes: []string{"billing:read"}, Services: []string{"billing"},
		CIDRs: []string{"10.1.0.0/16"}, TTL: "30m"}
	req, secret, tok, err := f.svc.Request(context.Background(), alice, spec)
	if err != nil || secret == "" || req.Status != store.RequestClaimed || req.DecidedBy != "policy:just-in-time" {
		t.Fatalf("got %v %+v", err, req)
	}
	if f.lookup(t, secret).ID != tok.ID {
		t.Fatal("secret finds another token")
	}
	var msgs []string
	for _, l := range f.lines() {
		msgs = append(msgs, l["msg"].(string))
	}
	if !slices.Equal(msgs, []string{"token.requested", "token.approved", "token.claimed"}) {
		t.Fatalf("audit trail %v", msgs)
	}
	// Wide ranges are no binding: the same request with 0.0.0.0/0 waits.
	spec.CIDRs = []string{"0.0.0.0/0"}
	req, secret, _, err = f.svc.Request(context.Background(), alice, spec)
	if err != nil || secret != "" || req.Status != store.RequestPending {
		t.Fatalf("wide CIDR: %v %q %+v", err, secret, req)
	}
}

func TestBootstrap(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, _, err := f.svc.Bootstrap(ctx, local, "alice", "alice", time.Hour)
	wantKind(t, err, lifecycle.KindForbidden, "self_approval")
	f.refusedLine(t, "token.bootstrap", "self_approval")

	secrets, toks, err := f.svc.Bootstrap(ctx, local, "alice", "bob", time.Hour)
	if err != nil || len(secrets) != 2 || len(toks) != 2 {
		t.Fatalf("bootstrap: %v %v", err, toks)
	}
	for _, tok := range toks {
		stored := f.lookup(t, secrets[tok.ID])
		if stored.ID != tok.ID || !slices.Equal(stored.Services, []string{ManagementService}) || stored.CreatedBy != "local-operator" {
			t.Fatalf("bootstrap token %+v", stored)
		}
	}
	if !slices.Contains(toks[0].Scopes, "tokens:request") || !slices.Contains(toks[1].Scopes, "tokens:approve") ||
		slices.Contains(toks[0].Scopes, "tokens:approve") || slices.Contains(toks[1].Scopes, "tokens:request") {
		t.Fatalf("duties %v %v", toks[0].Scopes, toks[1].Scopes)
	}
	f.lines()

	_, _, err = f.svc.Bootstrap(ctx, local, "carol", "dave", time.Hour)
	wantKind(t, err, lifecycle.KindConflict, "already_bootstrapped")
	f.refusedLine(t, "token.bootstrap", "already_bootstrapped")

	_, _, err = f.svc.Bootstrap(ctx, local, "carol\x1b[2K", "dave", time.Hour)
	wantKind(t, err, lifecycle.KindInvalid, "requester_invalid")
	f.refusedLine(t, "token.bootstrap", "requester_invalid")
}

func TestReportAndCheck(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, tok, err := f.svc.Issue(ctx, local, lifecycle.Spec{Owner: "alice", Purpose: "dashboards", Scopes: []string{"billing:read"}, Services: []string{"billing"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	// The local operator issues only within the policy's bounds.
	_, _, err = f.svc.Issue(ctx, local, writeSpec())
	wantKind(t, err, lifecycle.KindForbidden, "local_operator_bounds")

	rep, err := f.svc.Report(ctx, bob, 30*24*time.Hour)
	if err != nil || rep.LiveTokens != 1 || len(rep.NeverUsed) != 1 || len(rep.ExpiringSoon) != 1 {
		t.Fatalf("report: %v %+v", err, rep)
	}
	_, err = f.svc.Report(ctx, Principal{Name: "eve"}, time.Hour)
	wantKind(t, err, lifecycle.KindForbidden, "scope_missing")

	d, err := f.svc.Check(ctx, bob, tok.ID, policy.Request{Method: "GET", Host: "api", Path: "/billing/x", RawPath: "/billing/x", RemoteIP: "10.0.0.1"}, "billing", nil)
	if err != nil || !d.Allow {
		t.Fatalf("check GET: %v %+v", err, d)
	}
	d, err = f.svc.Check(ctx, bob, tok.ID, policy.Request{Method: "POST", Host: "api", Path: "/billing/x", RawPath: "/billing/x", RemoteIP: "10.0.0.1"}, "billing", nil)
	if err != nil || d.Allow || !slices.Contains(d.Reasons, "scope_missing") {
		t.Fatalf("check POST: %v %+v", err, d)
	}
	// A dry run spends nothing.
	if stored, _ := f.store.Get(ctx, tok.ID); stored.Uses != 0 || !stored.LastUsedAt.IsZero() {
		t.Fatalf("check spent a use: %+v", stored)
	}
	// Liveness is decided before any policy: an expired token is refused.
	f.now = f.now.Add(2 * time.Hour)
	d, err = f.svc.Check(ctx, bob, tok.ID, policy.Request{Method: "GET", Host: "api", Path: "/billing/x", RawPath: "/billing/x"}, "billing", nil)
	if err != nil || d.Allow || !slices.Contains(d.Reasons, "token_expired") {
		t.Fatalf("check expired: %v %+v", err, d)
	}
	_, err = f.svc.Check(ctx, bob, "tok_missing", policy.Request{Method: "GET"}, "billing", nil)
	wantKind(t, err, lifecycle.KindNotFound, "token_not_found")
}

// When the admin policy cannot decide, the action fails closed with a
// PolicyError (a technical failure, not a refusal): no refused line, no
// request stored.
func TestPolicyFailureFailsClosed(t *testing.T) {
	f := newFixture(t)
	broken, err := policy.NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte("package tokengate.gateway\n\nreasons contains \"x\" if false\n")}})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Policy = broken
	_, secret, _, err := f.svc.Request(context.Background(), alice, writeSpec())
	var pe *PolicyError
	var le *lifecycle.Error
	if !errors.As(err, &pe) || errors.As(err, &le) || secret != "" {
		t.Fatalf("got %v, want a PolicyError", err)
	}
	if l := f.lines(); len(l) != 0 {
		t.Fatalf("audit lines %v for a technical failure", l)
	}
	if all, _ := f.store.ListRequests(context.Background(), ""); len(all) != 0 {
		t.Fatalf("%d requests stored", len(all))
	}
}

// A token's own rate limit asked for in a request is the claimed token's.
func TestRequestedRateLimitReachesTheToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	spec := writeSpec()
	spec.RateLimit = "100/1m"
	req, _, _, err := f.svc.Request(ctx, alice, spec)
	if err != nil || req.RateLimit != (store.RateLimit{Requests: 100, Window: time.Minute}) {
		t.Fatalf("request: %v, rate limit %+v", err, req.RateLimit)
	}
	if _, err := f.svc.Approve(ctx, bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	_, secret, _, err := f.svc.Claim(ctx, alice, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.lookup(t, secret).RateLimit; got != req.RateLimit {
		t.Fatalf("claimed token's rate limit %+v, want %+v", got, req.RateLimit)
	}
}

// A rotated token's calls count with those of the token it replaced:
// every successor carries the first token's id as its rate key.
func TestRotationKeepsTheRateKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	spec := writeSpec()
	spec.RateLimit = "10/24h"
	req, _, _, err := f.svc.Request(ctx, alice, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	_, _, first, err := f.svc.Claim(ctx, alice, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	id := first.ID
	for range 2 {
		secret, _, err := f.svc.Rotate(ctx, alice, id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		next := f.lookup(t, secret)
		if next.RateKey != first.ID || next.RateLimit != first.RateLimit {
			t.Fatalf("successor %s has rate key %q and limit %+v, want %q and %+v", next.ID, next.RateKey, next.RateLimit, first.ID, first.RateLimit)
		}
		id = next.ID
	}
}

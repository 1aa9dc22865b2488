package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/duration"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/store"
)

// options are a node's options on a fresh bolt file, with the built-in
// policies, logging to the returned observer.
func options(t *testing.T) (Options, *observer.ObservedLogs) {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	core, logs := observer.New(zap.InfoLevel)
	return Options{Logger: zap.New(core), Now: time.Now, Store: s}, logs
}

// The assembled parts work together: a token issued through the lifecycle
// passes the gate, and a revocation through it reaches the caches.
func TestAssembledNodeDecides(t *testing.T) {
	o, logs := options(t)
	var forgotten []string
	var p *Parts
	o.Forget = func(tok *store.Token) {
		forgotten = append(forgotten, tok.ID)
		p.Gate.Forget(tok)
	}
	p, err := Assemble(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	secret, tok, err := p.Lifecycle.Issue(ctx, "test", lifecycle.Spec{Owner: "alice", Purpose: "unit", Scopes: []string{"billing:read"}, Services: []string{"billing"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	call := gateway.Call{Secret: secret, Service: "billing", Request: policy.Request{Method: "GET", Path: "/billing/x"}}
	if res := p.Gate.Authorize(ctx, &call); res.Outcome != gateway.Allow {
		t.Fatalf("issued token: %s %v", res.Outcome, res.Reasons())
	}
	if _, _, err := p.Lifecycle.Revoke(ctx, "test", tok.ID, "unit test"); err != nil {
		t.Fatal(err)
	}
	if len(forgotten) == 0 || forgotten[len(forgotten)-1] != tok.ID {
		t.Errorf("the revocation was not handed to Forget: %v", forgotten)
	}
	if res := p.Gate.Authorize(ctx, &call); res.Outcome != gateway.Deny || res.Refusal.Code != "token_revoked" {
		t.Fatalf("revoked token: %s %v", res.Outcome, res.Reasons())
	}
	if p.Lifecycle.MaxTTL != DefaultMaxTTL || p.PolicySource() != "built-in policies" || p.People != nil || p.Workloads != nil {
		t.Errorf("defaults: max_ttl %s, policy %q", p.Lifecycle.MaxTTL, p.PolicySource())
	}
	if logs.FilterMessage("tokengate ready").Len() != 0 {
		t.Error("ready before the adapter said so")
	}
	p.LogReady()
	ready := logs.FilterMessage("tokengate ready").AllUntimed()
	if len(ready) != 1 || ready[0].ContextMap()["decision_cache"] != int64(DefaultDecisionCache) {
		t.Errorf("ready line %v", ready)
	}
}

func TestAssembleRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		name    string
		edit    func(*Options)
		want    string
		checked bool
	}{
		{"negative decision cache", func(o *Options) { n := -1; o.DecisionCacheSize = &n }, "decision_cache must be 0 or more", true},
		{"people and workloads on one issuer", func(o *Options) {
			o.OIDC = &identity.PersonConfig{Issuer: "https://idp.example.com/", Audience: "tokengate"}
			o.Workloads = []identity.WorkloadConfig{{Name: "ci", Issuer: "https://IDP.example.com", Audience: "ci"}}
		}, "oidc and workload ci name the same issuer", true},
		{"missing policy folder", func(o *Options) { o.PolicyDir = filepath.Join(t.TempDir(), "none") }, "none: no such file or directory", false},
		{"bundle options without a bundle", func(o *Options) { o.PolicyBundle = &policy.BundleConfig{} }, "policy_bundle is set but policy names no bundle", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, _ := options(t)
			c.edit(&o)
			if _, err := Assemble(context.Background(), o); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want %q", err, c.want)
			}
			// What Check can tell without a store, it tells before one is
			// opened.
			o.Store = nil
			if err := o.Check(); c.checked != (err != nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Errorf("Check: %v, want an error: %v", err, c.checked)
			}
		})
	}
}

// A store that opens on first use is opened by Start, so that a lock
// another process holds fails the start rather than the first call.
func TestStartOpensTheStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	held, err := bolt.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	o, _ := options(t)
	o.Store = bolt.Deferred(path, 50*time.Millisecond)
	p, err := Assemble(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil || !strings.Contains(err.Error(), "opening token store") {
		p.Stop()
		t.Fatalf("Start on a held file: %v", err)
	}
}

// A policy folder is watched from Start to Stop: a change that does not
// compile is refused and reported, and work joined with Go ends at Stop.
func TestStartWatchesThePolicyFolder(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"gateway.rego", "admin.rego", "admin_roles.rego", "admin_rules.rego"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "policies", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o, logs := options(t)
	o.PolicyDir = dir
	reloads := make(chan bool, 8)
	o.OnPolicyReload = func(ok bool) { reloads <- ok }
	p, err := Assemble(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	p.Go(func(ctx context.Context) { <-ctx.Done(); close(ended) })
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package tokengate.gateway\nthis is not rego"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-reloads:
		if ok {
			t.Error("a policy that does not compile was put in force")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload reported within 10s of a change")
	}
	p.Stop()
	select {
	case <-ended:
	default:
		t.Error("Stop returned before the work joined with Go ended")
	}
	// The watcher reports, then logs.
	for deadline := time.Now().Add(5 * time.Second); logs.FilterMessage("policy change refused; previous policy stays in force").Len() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the refused change was not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The management node is built from the parts and the adapter's values.
func TestManagementNode(t *testing.T) {
	o, _ := options(t)
	o.OIDC = &identity.PersonConfig{Issuer: "https://idp.example.com", Audience: "tokengate-cli"}
	o.MaxTTL = time.Hour
	p, err := Assemble(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	desk := new(breakglass.Desk)
	n := p.ManagementNode(Management{BreakGlass: desk, BreakGlassDir: "/codes", ExchangeLimit: &addrlimit.AttemptLimit{Attempts: 3, Window: duration.Duration(time.Minute)}})
	if n.Manage != p.Manage || n.Store != p.Store || n.People != p.People || n.BreakGlass != desk || n.BreakGlassDir != "/codes" || n.MaxTTL != time.Hour || n.ExchangeBrake == nil || n.Leaks != p.Leaks || n.Leaks == nil {
		t.Errorf("node %+v", n)
	}
	if n.SignIn == nil || n.SignIn.Issuer != "https://idp.example.com" || n.SignIn.ClientID != "tokengate-cli" {
		t.Errorf("sign-in config %+v", n.SignIn)
	}
}

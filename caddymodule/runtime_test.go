package caddymodule

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// TestReloadSharesRuntime holds two apps on one store, as a reload does
// for a moment (the new config is provisioned and started before the old
// one stops): they share one runtime, so a revoke through either is seen
// by the cached decisions of both. Then a real reload keeps the runtime.
//
// Not parallel: it provisions a second app in the Caddy of this process,
// beside the serving one, and compares their memory.
func TestReloadSharesRuntime(t *testing.T) {
	e := newInProcessEnv(t, envOptions{decisionCache: 1000})
	serving := currentApp()
	rt := serving.rt

	// A second app from the same config, provisioned and started beside
	// the serving one.
	status, cfg := e.admin("GET", "/config/apps/tokengate", nil)
	if status != 200 {
		t.Fatalf("reading the running config: %d %s", status, cfg)
	}
	ctx, cancel := caddy.NewContext(caddy.ActiveContext())
	mod, err := ctx.LoadModuleByID("tokengate", cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	other := mod.(*App)
	if err := other.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	if other.rt != rt || other.store != serving.store {
		t.Fatal("two apps on one store have separate runtimes")
	}

	// Revoked through the other app: the serving one stops allowing the
	// call it has cached.
	secret, id := e.issue(billingReader(nil))
	for range 2 {
		if r := call(t, "GET", e.gateURL+"/billing/shared", bearer(secret)...); r.status != 200 {
			t.Fatalf("before revoke: %d %s", r.status, r.body)
		}
	}
	if _, _, err := other.manage.Tokens.Revoke(context.Background(), "test", id, "leaked in chat"); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "GET", e.gateURL+"/billing/shared", bearer(secret)...); r.status != 401 || r.reason != "token_revoked" {
		t.Fatalf("serving app after a revoke through the other: %d %q, want 401 token_revoked", r.status, r.reason)
	}

	// Revoked through the serving app's admin endpoint: the other app
	// stops allowing what it has cached.
	secret2, id2 := e.issue(billingReader(nil))
	c := &gateway.Call{Secret: secret2, Service: "billing", Request: policy.Request{
		Method: "GET", Host: "127.0.0.1", Path: "/billing/shared", RawPath: "/billing/shared", RemoteIP: "127.0.0.1",
	}}
	for range 2 {
		if res := other.gate.Authorize(context.Background(), c); res.Outcome != gateway.Allow {
			t.Fatalf("other app before revoke: %s %v", res.Outcome, res.Reasons())
		}
	}
	if status, body := e.admin("POST", "/tokengate/tokens/"+id2+"/revoke", map[string]string{"reason": "owner left"}); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if res := other.gate.Authorize(context.Background(), c); res.Outcome == gateway.Allow {
		t.Fatalf("other app still allows a token revoked through the serving one (cache %s)", res.Cache)
	}

	if err := other.Stop(); err != nil {
		t.Fatal(err)
	}
	cancel() // cleans the other app up: the runtime stays for the serving one
	if _, err := serving.store.Get(context.Background(), id); err != nil {
		t.Fatalf("store closed while a config still uses it: %v", err)
	}

	// A real reload: the new app joins the same runtime, and the old one
	// has let go of it.
	newEnvReusing(e, envOptions{decisionCache: 500})
	reloaded := currentApp()
	if reloaded == serving || reloaded.rt != rt {
		t.Fatal("a reload on the same store built a new runtime")
	}
	if apps := len(rt.Attached()); apps != 1 {
		t.Fatalf("runtime holds %d apps after the reload, want 1", apps)
	}
	if r := call(t, "GET", e.gateURL+"/billing/shared", bearer(secret2)...); r.status != 401 || r.reason != "token_revoked" {
		t.Fatalf("after reload: %d %q, want 401 token_revoked", r.status, r.reason)
	}
}

package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/store"
)

// cacheEvents records what the shared runtime reports to the metrics.
type cacheEvents struct {
	mu          sync.Mutex
	invalidated []string // source:token id
	resets      int
}

func (c *cacheEvents) Invalidated(source string, t *store.Token, _ time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalidated = append(c.invalidated, source+":"+t.ID)
}

func (c *cacheEvents) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resets++
}

// TestSharedRuntimeOfTwoConfigs attaches two configs' parts to one
// runtime, as a reload does for a moment: a token changed through either,
// or named by another node's notification, leaves the caches of both; a
// detached one is no longer told; a reset empties every cache and is
// logged by the newest config.
func TestSharedRuntimeOfTwoConfigs(t *testing.T) {
	o, logs := options(t)
	events := &cacheEvents{}
	sh := NewShared(o.Store, events)
	o.Forget = sh.Forget
	ctx := context.Background()
	old, err := Assemble(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	current, err := Assemble(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	sh.Attach(old)
	sh.Attach(current)
	if got := sh.Attached(); len(got) != 2 || got[0] != old || got[1] != current {
		t.Fatalf("attached %v", got)
	}
	// A store no other node writes: current from the start.
	if !sh.Fresh(time.Millisecond) || sh.Lag() != 0 {
		t.Errorf("a bolt store's runtime is behind by %s", sh.Lag())
	}

	issue := func() (*store.Token, gateway.Call) {
		secret, tok, err := current.Lifecycle.Issue(ctx, "test", lifecycle.Spec{Owner: "alice", Purpose: "unit", Scopes: []string{"billing:read"}, Services: []string{"billing"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		return tok, gateway.Call{Secret: secret, Service: "billing", Request: policy.Request{Method: "GET", Path: "/billing/x"}}
	}
	allowedByBoth := func(c gateway.Call) {
		t.Helper()
		for _, p := range []*Parts{old, current} {
			if res := p.Gate.Authorize(ctx, &c); res.Outcome != gateway.Allow {
				t.Fatalf("before the change: %s %v", res.Outcome, res.Reasons())
			}
		}
	}
	refusedByBoth := func(c gateway.Call, what string) {
		t.Helper()
		for _, p := range []*Parts{old, current} {
			if res := p.Gate.Authorize(ctx, &c); res.Outcome == gateway.Allow {
				t.Errorf("%s: a config still allows the token (cache %s)", what, res.Cache)
			}
		}
	}

	// Revoked through the older config's lifecycle: both forget it.
	tok, c := issue()
	allowedByBoth(c)
	if _, _, err := old.Lifecycle.Revoke(ctx, "test", tok.ID, "unit"); err != nil {
		t.Fatal(err)
	}
	refusedByBoth(c, "revoked on this node")

	// Revoked by another node: the store changes underneath, and the
	// notification names the token.
	elsewhere := &lifecycle.Service{Store: o.Store, Hasher: current.Hasher, Now: time.Now}
	revokeElsewhere := func(id string) {
		t.Helper()
		if _, _, err := elsewhere.Revoke(ctx, "test", id, "unit"); err != nil {
			t.Fatal(err)
		}
	}
	tok, c = issue()
	allowedByBoth(c)
	revokeElsewhere(tok.ID)
	sh.Changed(tok.ID)
	refusedByBoth(c, "revoked on another node")

	// A detached config is no longer told.
	sh.Detach(old)
	if got := sh.Attached(); len(got) != 1 || got[0] != current {
		t.Fatalf("attached after detach %v", got)
	}
	tok, c = issue()
	allowedByBoth(c)
	revokeElsewhere(tok.ID)
	sh.Changed(tok.ID)
	if res := old.Gate.Authorize(ctx, &c); res.Outcome != gateway.Allow || res.Cache != gateway.CacheHit {
		t.Errorf("the detached config's cache was emptied: %s %v", res.Outcome, res.Cache)
	}
	if res := current.Gate.Authorize(ctx, &c); res.Outcome == gateway.Allow {
		t.Error("the attached config still allows a token revoked elsewhere")
	}

	sh.Reset()
	if n := logs.FilterMessage("token change notifications may have been missed; dropping all cached tokens and decisions").Len(); n != 1 {
		t.Errorf("reset logged %d times, want once", n)
	}
	events.mu.Lock()
	if len(events.invalidated) < 3 || events.resets != 1 {
		t.Errorf("events %v, %d resets", events.invalidated, events.resets)
	}
	events.mu.Unlock()

	if err := sh.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Store.Get(ctx, tok.ID); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("the store still answers after Close: %v", err)
	}
}

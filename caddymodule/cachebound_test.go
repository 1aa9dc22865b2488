package caddymodule

import (
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
)

// TestCachedCallsOutliveTheStoreForCacheBoundOnly: with the store gone, a
// call this node has answered before is still answered from the cache, a
// new call fails closed, and once gateway.CacheBound has passed the cached
// one fails closed too.
func TestCachedCallsOutliveTheStoreForCacheBoundOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	secret, _ := e.issue(billingReader(nil))
	other, _ := e.issue(billingReader(nil))
	if r := call(t, "GET", e.gateURL+"/billing/bound", bearer(secret)...); r.status != 200 {
		t.Fatal(r.status)
	}
	e.closeStore()
	if r := call(t, "GET", e.gateURL+"/billing/bound", bearer(secret)...); r.status != 200 {
		t.Fatalf("cached call with the store down: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", e.gateURL+"/billing/bound-new", bearer(other)...); r.status != 503 {
		t.Fatalf("uncached call with the store down: %d", r.status)
	}
	e.advance(gateway.CacheBound)
	if r := call(t, "GET", e.gateURL+"/billing/bound", bearer(secret)...); r.status != 503 || r.reason != "store_unavailable" {
		t.Fatalf("cached call after CacheBound with the store down: %d %s", r.status, r.reason)
	}
}

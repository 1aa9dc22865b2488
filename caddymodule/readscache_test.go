package caddymodule

import (
	"fmt"
	"testing"
)

// Through real Caddy: the shipped policy never reads the path, so calls to
// /items/{id} share one cached decision, as the audit lines' cache field
// shows.
func TestShippedPolicyCachesAcrossIdsInPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	secret, _ := e.issue(billingReader(nil))
	for i := 1; i <= 4; i++ {
		path := fmt.Sprintf("/billing/items/%d", i)
		if r := call(t, "GET", e.gateURL+path, bearer(secret)...); r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		want := "hit"
		if i == 1 {
			want = "miss"
		}
		if got := e.auditFor(path)["cache"]; got != want {
			t.Errorf("%s: cache %v, want %s", path, got, want)
		}
		e.settleDecisionCaches()
	}
}

// A policy with a path rule keys its decisions on the path: after an allow
// is cached for one path, the forbidden path is still refused and never
// reaches the upstream.
func TestPathRuleRefusesAfterCachedAllowOnAnotherPath(t *testing.T) {
	t.Parallel()
	dir := copyPolicies(t, map[string]string{"internal.rego": `package tokengate.gateway

reasons contains "path_forbidden" if startswith(input.request.path, "/billing/internal/")
`})
	e := newEnv(t, envOptions{decisionCache: 1000, policyDir: dir})
	secret, _ := e.issue(billingReader(nil))
	if r := call(t, "GET", e.gateURL+"/billing/items/1", bearer(secret)...); r.status != 200 {
		t.Fatalf("/billing/items/1: %d %s", r.status, r.body)
	}
	e.auditFor("/billing/items/1")
	e.settleDecisionCaches()
	if r := call(t, "GET", e.gateURL+"/billing/internal/k", bearer(secret)...); r.status != 403 || r.reason != "path_forbidden" {
		t.Fatalf("forbidden path after a cached allow: %d %s", r.status, r.body)
	}
	if n := len(e.upstream.received("/billing/internal/k")); n != 0 {
		t.Fatalf("%d forbidden calls reached the upstream", n)
	}
	if l := e.auditFor("/billing/internal/k"); l["decision"] != "deny" || l["cache"] != "miss" {
		t.Errorf("forbidden path: audit decision %v cache %v, want deny miss", l["decision"], l["cache"])
	}
	if r := call(t, "GET", e.gateURL+"/billing/items/2", bearer(secret)...); r.status != 200 {
		t.Fatalf("/billing/items/2: %d %s", r.status, r.body)
	}
	if got := e.auditFor("/billing/items/2")["cache"]; got != "miss" {
		t.Errorf("/billing/items/2: cache %v, want miss (the path is in the key)", got)
	}
}

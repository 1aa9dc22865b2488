package policy

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// Gateway and admin outputs of a type the engine cannot read are refused
// at load with the file:line of the rule, instead of loading and then
// failing every decision.
func TestOutputTypesAreCheckedAtLoad(t *testing.T) {
	gateway := func(src string) fstest.MapFS {
		return fstest.MapFS{"gateway.rego": {Data: []byte("package tokengate.gateway\n\n" + src + "\n")}}
	}
	admin := func(src string) fstest.MapFS {
		return fstest.MapFS{
			"gateway.rego": {Data: []byte(allowAll)},
			"admin.rego":   {Data: []byte("package tokengate.admin\n\n" + src + "\n")},
		}
	}
	for _, c := range []struct {
		name string
		fsys fstest.MapFS
		at   string // file:line the refusal names
	}{
		{"reasons a string", gateway(`reasons := "none"`), "gateway.rego:3"},
		{"reasons a set of numbers", gateway("reasons := {1, 2}"), "gateway.rego:3"},
		{"reasons a partial set of numbers", gateway(`reasons contains "ok" if false` + "\nreasons contains 7 if input.token.uses > 1"), "gateway.rego:4"},
		{"reasons an object", gateway(`reasons := {"a": "b"}`), "gateway.rego:3"},
		{"reasons false", gateway("reasons := false"), "gateway.rego:3"},
		{"reasons null", gateway("reasons := null"), "gateway.rego:3"},
		{"reasons an array of numbers", gateway("reasons := [1]"), "gateway.rego:3"},
		{"scope a set", gateway("reasons := set()\nscope contains input.token.id"), "gateway.rego:4"},
		{"scope a number", gateway("reasons := set()\nscope := 3"), "gateway.rego:4"},
		{"ttl_seconds a string", gateway("reasons := set()\n\nttl_seconds := \"1h\""), "gateway.rego:5"},
		{"ttl_seconds a boolean", gateway("reasons := set()\nttl_seconds := input.token.uses > 1"), "gateway.rego:4"},
		{"rate_limit a string", gateway("reasons := set()\nrate_limit := \"100/1m\""), "gateway.rego:4"},
		{"rate_limit requests a string", gateway("reasons := set()\nrate_limit := {\"requests\": \"100\", \"window\": \"1m\"}"), "gateway.rego:4"},
		{"rate_limit window a number", gateway("reasons := set()\nrate_limit := {\"requests\": 100, \"window\": 60}"), "gateway.rego:4"},
		{"rate_limit without window", gateway("reasons := set()\nrate_limit := {\"requests\": 100}"), "gateway.rego:4"},
		{"admin decision a string", admin(`decision := "allow"`), "admin.rego:3"},
		{"admin allow a string", admin(`decision := {"allow": "yes", "reasons": []}`), "admin.rego:3"},
		{"admin without allow", admin(`decision := {"reasons": []}`), "admin.rego:3"},
		{"admin reasons a number", admin(`decision := {"allow": false, "reasons": 1}`), "admin.rego:3"},
		{"admin reasons a set of numbers", admin(`decision := {"allow": false, "reasons": {1}}`), "admin.rego:3"},
		{"admin auto_approve a string", admin(`decision := {"allow": true, "reasons": [], "auto_approve": "true"}`), "admin.rego:3"},
		{"admin rate_limit a string", admin(`decision := {"allow": true, "reasons": [], "rate_limit": "100/1m"}`), "admin.rego:3"},
		{"admin ttl_seconds a string", admin(`decision := {"allow": true, "reasons": [], "ttl_seconds": "60"}`), "admin.rego:3"},
		{"admin one of two definitions wrong", admin(`default decision := {"allow": false, "reasons": ["x"]}` + "\n\ndecision := {\"allow\": true, \"reasons\": [1]} if input.action == \"read\""), "admin.rego:5"},
	} {
		_, err := NewEngine(c.fsys)
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.at+":") || !strings.Contains(err.Error(), "want ") {
			t.Errorf("%s: %v, want a refusal at %s saying what the type should be", c.name, err, c.at)
		}
	}

	for name, fsys := range map[string]fstest.MapFS{
		"reasons a partial set":        gateway(`reasons contains "scope_missing" if not "billing:read" in input.token.scopes`),
		"reasons an array":             gateway(`reasons := ["a", "b"]`),
		"reasons from data":            gateway("reasons := {r | some r in data.x}"),
		"reasons from a comprehension": gateway(`reasons := {sprintf("no_%s", [s]) | some s in input.token.services}`),
		"scope and ttl_seconds":        gateway("reasons := set()\nscope := concat(\":\", [input.token.id, \"read\"])\nttl_seconds := 2.5"),
		"admin built from rules": admin(`default allow := false

allow if input.action == "read"

denials contains "nope" if not allow

decision := {"allow": allow, "reasons": denials, "auto_approve": false, "ttl_seconds": 0}`),
		"admin with object.union": admin(`decision := object.union({"allow": false}, {"reasons": ["x"]})`),
	} {
		if _, err := NewEngine(fsys); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A reload that breaks the types is refused like any broken edit, through
// the watcher, and the previous revision keeps deciding.
func TestWrongOutputTypeKeepsThePreviousRevision(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "gateway.rego", denyAll)
	e, err := NewEngine(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	rev := e.Revision()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := make(chan error, 10)
	if err := e.Watch(ctx, dir, func(_ string, err error) { reports <- err }); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, "gateway.rego", "package tokengate.gateway\nreasons := \"none\"\n")
	select {
	case err := <-reports:
		if err == nil || !strings.Contains(err.Error(), "gateway.rego:2:") {
			t.Fatalf("reload of reasons := \"none\": %v, want a refusal at gateway.rego:2", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watcher reported nothing")
	}
	if e.Revision() != rev {
		t.Fatal("the refused policy replaced the working one")
	}
	d := decide(t, e, sampleToken(time.Now()), Request{Method: "GET"}, "billing", time.Now())
	if d.Allow || !slices.Equal(d.Reasons, []string{"closed_for_maintenance"}) {
		t.Fatalf("previous policy not deciding: %+v", d)
	}
}

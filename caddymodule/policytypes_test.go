package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A gateway policy edit whose reasons is not a set of strings is refused
// when Caddy reloads it, with file:line in the log, and the previous
// policy keeps answering calls (instead of every call getting 503).
func TestPolicyWithWrongOutputTypeIsRefusedOnReload(t *testing.T) {
	t.Parallel()
	dir, _ := shippedPolicyFolder(t, "")
	e := newEnv(t, envOptions{policyDir: dir})
	secret, _ := e.issue(billingReader(nil))
	if r := call(t, "GET", e.gateURL+"/billing/before", bearer(secret)...); r.status != 200 {
		t.Fatalf("before the edit: %d %s", r.status, r.body)
	}
	for _, c := range []struct{ src, got string }{
		{`reasons := "none"`, "is string"},
		{"reasons := {1, 2}", "is set[number]"},
		{"reasons := null", "is null"},
	} {
		src := c.src
		if err := os.WriteFile(filepath.Join(dir, "gateway.rego"), []byte("package tokengate.gateway\n\n"+src+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.caddyLogged("refusing "+src, func(l map[string]any) bool {
			return l["level"] == "error" && strings.Contains(fmt.Sprint(l["msg"]), "policy change refused") &&
				strings.Contains(fmt.Sprint(l["error"]), "gateway.rego:3:") && strings.Contains(fmt.Sprint(l["error"]), c.got)
		})
		if r := call(t, "GET", e.gateURL+"/billing/after", bearer(secret)...); r.status != 200 {
			t.Fatalf("after %s: %d %s, want the previous policy answering", src, r.status, r.body)
		}
	}
}

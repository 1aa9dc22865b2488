package caddymodule

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/policies"
)

// shippedPolicyFolder writes the shipped policy files into a new folder,
// with src appended to gateway.rego, and returns the folder and the line
// src starts on.
func shippedPolicyFolder(t *testing.T, src string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, appendToGateway(t, dir, src)
}

func appendToGateway(t *testing.T, dir, src string) int {
	t.Helper()
	b, err := fs.ReadFile(policies.FS, "gateway.rego")
	if err != nil {
		t.Fatal(err)
	}
	orig := strings.TrimRight(string(b), "\n") + "\n\n"
	if err := os.WriteFile(filepath.Join(dir, "gateway.rego"), []byte(orig+src), 0o644); err != nil {
		t.Fatal(err)
	}
	return strings.Count(orig, "\n") + 1
}

// caddyLogged waits until a line of Caddy's own log satisfies match.
func (e *env) caddyLogged(what string, match func(map[string]any) bool) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, l := range readJSONLines(e.t, filepath.Join(e.dir, "caddy.log")) {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("caddy.log has no line %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A builtin's error in a reason rule is a 503 policy_unavailable with an
// error audit line, never an allow (with non-strict builtin errors the
// rule came out undefined and the call passed).
func TestPolicyBuiltinErrorAnswers503(t *testing.T) {
	t.Parallel()
	dir, _ := shippedPolicyFolder(t, "reasons contains \"host_too_big\" if to_number(input.request.host) > 10\n")
	e := newEnv(t, envOptions{policyDir: dir})
	secret, _ := e.issue(billingReader(nil))
	r := call(t, "GET", e.gateURL+"/billing/builtin-error", bearer(secret)...)
	if r.status != 503 || r.reason != "policy_unavailable" {
		t.Fatalf("got %d %s, want 503 policy_unavailable", r.status, r.body)
	}
	if n := len(e.upstream.received("/billing/builtin-error")); n != 0 {
		t.Fatalf("%d calls reached the upstream", n)
	}
	if line := e.auditFor("/billing/builtin-error"); line["decision"] != "error" {
		t.Fatalf("audit line %v, want decision error", line)
	}
}

// print() output lands in Caddy's log under logger tokengate.policy; a
// reload refused for a misspelt input field is logged at error level with
// file:line, and the previous policy keeps serving.
func TestPolicyPrintAndRefusedReload(t *testing.T) {
	t.Parallel()
	dir, line := shippedPolicyFolder(t, "reasons contains \"never\" if {\n\tprint(\"policy saw\", input.request.path)\n\tinput.token.uses < 0\n}\n")
	e := newEnv(t, envOptions{policyDir: dir})
	secret, _ := e.issue(billingReader(nil))
	if r := call(t, "GET", e.gateURL+"/billing/printed", bearer(secret)...); r.status != 200 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	printed := e.caddyLogged("from print()", func(l map[string]any) bool {
		return l["logger"] == "tokengate.policy" && l["msg"] == "policy saw /billing/printed"
	})
	if loc, _ := printed["location"].(string); !strings.HasPrefix(loc, fmt.Sprintf("gateway.rego:%d", line+1)) {
		t.Fatalf("print line %v, want location gateway.rego:%d", printed, line+1)
	}

	typo := appendToGateway(t, dir, "reasons contains \"token_revoked\" if input.token.revokedAt > 0\n")
	refused := e.caddyLogged("refusing the reload", func(l map[string]any) bool {
		return l["level"] == "error" && strings.Contains(fmt.Sprint(l["msg"]), "policy change refused")
	})
	if msg := fmt.Sprint(refused["error"]); !strings.Contains(msg, fmt.Sprintf("gateway.rego:%d:", typo)) || !strings.Contains(msg, "revokedAt") {
		t.Fatalf("refusal logged as %v, want gateway.rego:%d and the field", refused, typo)
	}
	if r := call(t, "GET", e.gateURL+"/billing/after-refusal", bearer(secret)...); r.status != 200 {
		t.Fatalf("previous policy not serving: %d %s", r.status, r.body)
	}
}

// The admin input schema describes exactly what the management service
// sends: with a rule refusing any input that does not match the schema
// (missing fields and extra ones alike), every management action still
// succeeds. A field the schema names but the service never sends would
// make a rule on it silently never hold.
func TestAdminInputMatchesItsSchema(t *testing.T) {
	t.Parallel()
	dir, _ := shippedPolicyFolder(t, "")
	schema, err := policies.Schemas.ReadFile("schemas/admin_input.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "schemas/admin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "schemas/admin/data.json"), schema, 0o644); err != nil {
		t.Fatal(err)
	}
	check := `package tokengate.admin

denials contains sprintf("input_schema_mismatch: %v", [errors]) if {
	[ok, errors] := json.match_schema(input, data.schemas.admin)
	not ok
}
`
	if err := os.WriteFile(filepath.Join(dir, "schemacheck.rego"), []byte(check), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{policyDir: dir})
	_, id := e.approvedToken(billingReader(map[string]any{"scopes": []string{"billing:write"}})) // bootstrap, request, approve, claim
	if _, other := e.issue(billingReader(nil)); other == "" {                                    // issue
		t.Fatal("issue failed")
	}
	for _, action := range []struct{ method, path string }{
		{"GET", "/tokengate/tokens/" + id},
		{"POST", "/tokengate/tokens/" + id + "/revoke"},
	} {
		if status, body := e.admin(action.method, action.path, map[string]string{"reason": "schema test"}); status != 200 {
			t.Fatalf("%s %s: %d %s", action.method, action.path, status, body)
		}
	}
	status, body := e.mgmt(e.requester, "POST", "/v1/requests", billingReader(map[string]any{"ttl": "2h"}))
	if status != 202 {
		t.Fatalf("request: %d %s", status, body)
	}
	var asked RequestOutcome
	_ = json.Unmarshal(body, &asked)
	if status, body := e.mgmt(e.approver, "POST", "/v1/requests/"+asked.Request.ID+"/deny", map[string]string{"reason": "no"}); status != 200 {
		t.Fatalf("deny: %d %s", status, body)
	}
}

package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/testutil/opabundle"
)

func TestPolicyBundleCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		input   string
		want    string
		wantErr string
	}{
		{input: "tokengate {\n policy ./bundle.tar.gz\n}", want: `{"policy":"./bundle.tar.gz"}`},
		{input: "tokengate {\n policy https://b.example.com/tg.tar.gz {\n  poll 30s\n  verify_key ./k.pem\n  verify_alg ES256\n  timeout 5s\n }\n max_ttl 1h\n}",
			want: `{"policy":"https://b.example.com/tg.tar.gz","policy_bundle":{"poll":30000000000,"verify_key":"./k.pem","verify_alg":"ES256","timeout":5000000000},"max_ttl":3600000000000}`},
		{input: "tokengate {\n policy\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n policy a b\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n policy u {\n  poll often\n }\n}", wantErr: `poll "often" is not a positive duration`},
		{input: "tokengate {\n policy u {\n  timeout 0s\n }\n}", wantErr: "not a positive duration"},
		{input: "tokengate {\n policy u {\n  verify_key\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n policy u {\n  signing_key k\n }\n}", wantErr: `unrecognized policy subdirective "signing_key"`},
		{input: "tokengate {\n policy u {\n  max_bundle_bytes 2MiB\n  max_bundle_uncompressed_bytes 8MB\n }\n}",
			want: `{"policy":"u","policy_bundle":{"max_bundle_bytes":2097152,"max_bundle_uncompressed_bytes":8000000}}`},
		{input: "tokengate {\n policy u {\n  max_bundle_bytes lots\n }\n}", wantErr: `max_bundle_bytes "lots" is not a size such as 16MiB`},
		{input: "tokengate {\n policy u {\n  max_bundle_uncompressed_bytes 0\n }\n}", wantErr: "is not a size"},
		{input: "tokengate {\n policy u {\n  max_bundle_bytes -1MiB\n }\n}", wantErr: "is not a size"},
	}
	for _, c := range cases {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err = %v, want %q", c.input, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.input, err)
			continue
		}
		if got, _ := json.Marshal(&a); string(got) != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.input, got, c.want)
		}
	}
}

// Through real Caddy: the gateway's policy is a signed bundle that the
// same Caddy serves with file_server. A new revision changes decisions
// and lands in the audit line's policy_rev; a tampered bundle is refused
// and logged, and the previous policy keeps deciding.
func TestPolicyBundleThroughCaddy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	priv, pub := opabundle.KeyPair(t, dir, "signing")
	served := filepath.Join(site, "tokengate.tar.gz")
	closed := opabundle.Policies(t, map[string]string{"closed.rego": "package tokengate.gateway\n\nreasons contains \"billing_closed\" if input.route.service == \"billing\"\n"})
	build := func(name, src, rev string) string {
		return opabundle.Build(t, src, filepath.Join(dir, name), rev, opabundle.Signed(priv)...)
	}
	put := func(path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tmp := served + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, served); err != nil {
			t.Fatal(err)
		}
	}
	put(build("v1.tar.gz", opabundle.Policies(t, nil), "v1"))

	routes := fmt.Sprintf("route /bundles/* {\n\t\turi strip_prefix /bundles\n\t\troot * %s\n\t\tfile_server\n\t}", site)
	// The bundle server has to answer while the bundle config provisions:
	// the first config serves it, the second fetches from the first.
	e := newEnv(t, envOptions{decisionCache: 1000, extraRoutes: routes})
	policy := fmt.Sprintf("%s/bundles/tokengate.tar.gz {\n\t\t\tpoll 100ms\n\t\t\tverify_key %s\n\t\t\ttimeout 2s\n\t\t}", e.gateURL, pub)
	newEnvReusing(e, envOptions{decisionCache: 1000, extraRoutes: routes, policyDir: policy})

	secret, _ := e.issue(billingReader(nil))
	if r := call(t, "GET", e.gateURL+"/billing/v1", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("under v1: %d %s", r.status, r.body)
	}
	if rev := e.auditFor("/billing/v1")["policy_rev"]; !strings.HasPrefix(fmt.Sprint(rev), "v1+") {
		t.Fatalf("policy_rev %v, want v1+<hash>", rev)
	}

	put(build("v2.tar.gz", closed, "v2"))
	var r response
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		r = call(t, "GET", fmt.Sprintf("%s/billing/v2-%d", e.gateURL, i), bearer(secret)...)
		if r.status == http.StatusForbidden {
			if line := e.auditFor(fmt.Sprintf("/billing/v2-%d", i)); !strings.HasPrefix(fmt.Sprint(line["policy_rev"]), "v2+") {
				t.Fatalf("denied under policy_rev %v, want v2+<hash>", line["policy_rev"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v2 never took effect: %d %s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.reason != "billing_closed" {
		t.Fatalf("reason %q, want billing_closed", r.reason)
	}

	tampered := build("v3.tar.gz", opabundle.Policies(t, nil), "v3")
	opabundle.Tamper(t, tampered, `"scope_missing"`, `"scope_mizzing"`)
	put(tampered)
	waitForLog(t, filepath.Join(e.dir, "caddy.log"), "policy bundle refused; previous policy stays in force", "digest mismatch")
	if r := call(t, "GET", e.gateURL+"/billing/after-tamper", bearer(secret)...); r.status != http.StatusForbidden || r.reason != "billing_closed" {
		t.Fatalf("after a tampered bundle: %d %s, want the v2 policy's 403 billing_closed", r.status, r.body)
	}
}

// waitForLog waits for a line of Caddy's log with msg whose error holds
// errPart.
func waitForLog(t *testing.T, path, msg, errPart string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, l := range readJSONLines(t, path) {
			if l["msg"] == msg && strings.Contains(fmt.Sprint(l["error"]), errPart) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q with %q", msg, errPart)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

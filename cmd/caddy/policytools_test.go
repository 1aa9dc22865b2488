package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/testutil/opabundle"
)

// shippedDirectory is the shipped directory data, which opabundle.Policies
// leaves out and the shipped Rego tests read.
const shippedDirectory = "tokengate/directory/data.json"

func withDirectory(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(caddyproc.RepoRoot(t), "policies", shippedDirectory))
	if err != nil {
		t.Fatal(err)
	}
	files[shippedDirectory] = string(b)
	return files
}

// An operator's copy of the policies with a rule whose reason code no
// test names: policy-test fails on the folder and on the bundle built from
// it, and says which code, in each format.
func TestPolicyTestEnforcesATestPerReason(t *testing.T) {
	t.Parallel()
	const rule = "\nreasons contains \"weekend_call\" if input.now < 0\n"
	dir := opabundle.Policies(t, withDirectory(t, map[string]string{"weekend.rego": "package tokengate.gateway\n" + rule}))
	bundle := opabundle.Build(t, dir, filepath.Join(t.TempDir(), "bundle.tar.gz"), "r1")

	for _, location := range []string{dir, bundle} {
		stdout, stderr, err := runCaddy(t, "tokengate", "policy-test", location)
		if exitCode(err) != 1 || !strings.Contains(stdout, `weekend.rego emits "weekend_call" but `) || !strings.Contains(stdout, "1 reason codes untested") {
			t.Errorf("policy-test %s: %v\n%s\n%s", location, err, stdout, stderr)
		}

		stdout, _, err = runCaddy(t, "tokengate", "policy-test", location, "--format", "json")
		var report struct {
			Tests           []struct{ Name string }
			UntestedReasons []struct{ Policy, Tests, Reason string } `json:"untested_reasons"`
			Passed, Failed  int
		}
		if exitCode(err) != 1 || json.Unmarshal([]byte(stdout), &report) != nil || len(report.UntestedReasons) != 1 ||
			report.UntestedReasons[0].Reason != "weekend_call" || report.Failed != 0 || report.Passed < 10 || report.Passed != len(report.Tests) {
			t.Errorf("policy-test %s --format json: %v\n%s", location, err, stdout)
		}

		stdout, _, err = runCaddy(t, "tokengate", "policy-test", location, "--format", "junit")
		var suite struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		}
		if exitCode(err) != 1 || xml.Unmarshal([]byte(stdout), &suite) != nil || suite.Failures != 1 || suite.Tests != len(suite.Cases) ||
			suite.Cases[len(suite.Cases)-1].Name != "reason weekend_call is tested" || suite.Cases[len(suite.Cases)-1].Failure == nil {
			t.Errorf("policy-test %s --format junit: %v\n%s", location, err, stdout)
		}
	}

	// With a test naming the code, the folder and its bundle pass.
	dir = opabundle.Policies(t, withDirectory(t, map[string]string{
		"weekend.rego":      "package tokengate.gateway\n" + rule,
		"weekend_test.rego": "package tokengate.weekend_test\n\nimport data.tokengate.gateway\n\ntest_weekend if \"weekend_call\" in gateway.reasons with input.now as -1\n",
	}))
	bundle = opabundle.Build(t, dir, filepath.Join(t.TempDir(), "bundle.tar.gz"), "r2")
	for _, location := range []string{dir, bundle} {
		if stdout, stderr, err := runCaddy(t, "tokengate", "policy-test", location); err != nil || !strings.Contains(stdout, ", 0 failed, 0 reason codes untested") {
			t.Errorf("policy-test %s with the test: %v\n%s\n%s", location, err, stdout, stderr)
		}
	}
	if _, stderr, err := runCaddy(t, "tokengate", "policy-test", dir, "--format", "yaml"); exitCode(err) != 1 || !strings.Contains(stderr, "want text, json or junit") {
		t.Errorf("--format yaml: %v %s", err, stderr)
	}
}

// check --policy takes a bundle as it takes a folder: the decision comes
// from the bundle's rules, on the stored token of a running gateway.
func TestCheckReadsABundle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	p, _ := startGateway(t, dir, up.Listener.Addr().String(), nil)
	local := []string{"--address", p.Admin}
	stdout, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "issue", "--owner", "alice", "--purpose", "bundle check",
		"--scope", "api:read", "--service", "api", "--ttl", "30m", "--json"}, local...)...)
	var issued struct{ Token struct{ ID string } }
	if err != nil || json.Unmarshal([]byte(stdout), &issued) != nil {
		t.Fatalf("issue: %v\n%s", err, stderr)
	}
	closed := opabundle.Policies(t, map[string]string{"closed.rego": "package tokengate.gateway\n\nreasons contains \"api_closed\" if input.route.service == \"api\"\n"})
	bundle := opabundle.Build(t, closed, filepath.Join(t.TempDir(), "bundle.tar.gz"), "closed-1")
	args := append([]string{"tokengate", "check", "--token-id", issued.Token.ID, "--service", "api"}, local...)

	if stdout, stderr, err := p.CLI(t, nil, args...); err != nil || !strings.HasPrefix(stdout, "allow") {
		t.Fatalf("check with the running policy: %v\n%s\n%s", err, stdout, stderr)
	}
	stdout, stderr, err = p.CLI(t, nil, append(args, "--policy", bundle)...)
	if exitCode(err) != 3 || !strings.HasPrefix(stdout, "deny api_closed") || !strings.Contains(stdout, "closed-1+") {
		t.Errorf("check --policy %s: %v\n%s\n%s", bundle, err, stdout, stderr)
	}
}

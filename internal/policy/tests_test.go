package policy

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
)

// policy-test loads what the engine loads (data files included) and
// refuses what the engine refuses.
func TestRunTestsLoadsLikeTheEngine(t *testing.T) {
	fsys := fstest.MapFS{
		"gateway.rego":                  {Data: []byte(dataPolicy)},
		"tokengate/directory/data.json": {Data: []byte(`{"blocked": ["mallory"]}`)},
		"limits/data.yaml":              {Data: []byte("uses: 5\n")},
		"gateway_test.rego": {Data: []byte(`package tokengate.gateway_test

import data.tokengate.gateway

test_blocked if "owner_blocked" in gateway.reasons with input as {"token": {"owner": "mallory", "uses": 0}}

test_wrong if "owner_blocked" in gateway.reasons with input as {"token": {"owner": "alice", "uses": 0}}
`)},
	}
	results, err := RunTests(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	passed := map[string]bool{}
	for _, r := range results {
		passed[r.Name] = r.Passed
	}
	if len(passed) != 2 || !passed["tokengate.gateway_test.test_blocked"] || passed["tokengate.gateway_test.test_wrong"] {
		t.Fatalf("got %+v", results)
	}
	fsys["gateway.rego"] = &fstest.MapFile{Data: []byte(dataPolicy + "\nreasons contains \"revoked\" if input.token.revokedAt > 0\n")}
	if _, err := RunTests(context.Background(), fsys); err == nil || !strings.Contains(err.Error(), "revokedAt") {
		t.Fatalf("got %v, want the type error", err)
	}
}

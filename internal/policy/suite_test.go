package policy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/tokengate/caddy-tokengate/internal/testutil/opabundle"
)

// suiteFolder is a policy folder whose gateway policy emits three codes,
// one of which (owner_blocked) no test names; the admin policy has no
// tests at all.
var suiteFolder = map[string]string{
	"gateway.rego": `package tokengate.gateway

reasons contains "night_call" if input.now > 10
reasons contains "owner_blocked" if input.token.owner == "mallory"
reasons contains "too_many" if input.token.uses > 5
reasons contains "too_many" if input.token.max_uses > 50
`,
	"gateway_test.rego": `package tokengate.gateway_test

import data.tokengate.gateway

test_night if "night_call" in gateway.reasons with input as {"now": 11, "token": {"owner": "a", "uses": 0, "max_uses": 0}}
test_many if {
	want := "too_many"
	want in gateway.reasons with input as {"now": 0, "token": {"owner": "a", "uses": 6, "max_uses": 0}}
}
`,
	"admin.rego": `package tokengate.admin

denials contains "friday" if input.now == 5
`,
}

// policy-test on any folder or bundle finds the reason codes no test
// names: those of a policy whose tests never mention them, and every code
// of a policy without tests. A code named anywhere in the tests (in a
// variable too) counts as tested.
func TestSuiteFindsUntestedReasons(t *testing.T) {
	fsys := fstest.MapFS{}
	for name, src := range suiteFolder {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	s, err := ReadSuiteFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []Untested{
		{Policy: "admin.rego", Tests: "admin_test.rego", Reason: "friday"},
		{Policy: "gateway.rego", Tests: "gateway_test.rego", Reason: "owner_blocked"},
	}
	if got := s.Untested(); !slices.Equal(got, want) {
		t.Errorf("Untested = %+v, want %+v", got, want)
	}

	// The same folder as a bundle built by the real `opa build`.
	dir := t.TempDir()
	for name, src := range suiteFolder {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := ReadSuite(opabundle.Build(t, dir, filepath.Join(t.TempDir(), "bundle.tar.gz"), "r1"))
	if err != nil {
		t.Fatal(err)
	}
	// A bundle's module paths hold the folder it was built from.
	got := b.Untested()
	for i := range got {
		got[i].Policy, got[i].Tests = filepath.Base(got[i].Policy), filepath.Base(got[i].Tests)
	}
	if !slices.Equal(got, want) {
		t.Errorf("bundle: Untested = %+v, want %+v", got, want)
	}
	results, err := b.Run(t.Context())
	if err != nil || len(results) != 2 || !results[0].Passed || !results[1].Passed {
		t.Errorf("bundle tests: %+v %v", results, err)
	}

	// The shipped policies leave nothing untested.
	shipped, err := ReadSuite(opabundle.Policies(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := shipped.Untested(); len(got) != 0 {
		t.Errorf("shipped policies: %+v", got)
	}
}

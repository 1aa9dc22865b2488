package policy

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const dataPolicy = `package tokengate.gateway

reasons contains "owner_blocked" if input.token.owner in data.tokengate.directory.blocked

reasons contains "too_many_uses" if input.token.uses > data.limits.uses
`

// data.json and data.yaml load where OPA puts them (the folder path is
// the data path), count in the revision, and nothing else is data: not
// other JSON files, not hidden folders.
func TestDataFilesLoadAsOPAData(t *testing.T) {
	fsys := fstest.MapFS{
		"gateway.rego":                  {Data: []byte(dataPolicy)},
		"tokengate/directory/data.json": {Data: []byte(`{"blocked": ["mallory"]}`)},
		"limits/data.yaml":              {Data: []byte("uses: 5\n")},
		"notes.json":                    {Data: []byte(`{"limits": {"uses": 0}}`)},
		".old/limits/data.json":         {Data: []byte(`{"uses": 0}`)},
	}
	e, err := NewEngine(fsys)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := sampleToken(now)
	if d := decide(t, e, tok, Request{Method: "GET"}, "billing", now); !d.Allow {
		t.Fatalf("alice, 0 uses: %+v", d)
	}
	tok.Owner, tok.Uses = "mallory", 6
	d := decide(t, e, tok, Request{Method: "GET"}, "billing", now)
	if !slices.Equal(d.Reasons, []string{"owner_blocked", "too_many_uses"}) {
		t.Fatalf("mallory, 6 uses: %+v", d)
	}

	rev := e.Revision()
	fsys["tokengate/directory/data.json"] = &fstest.MapFile{Data: []byte(`{"blocked": []}`)}
	if _, err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.Revision() == rev {
		t.Fatal("a data change left the revision as it was")
	}
	if d := decide(t, e, tok, Request{Method: "GET"}, "billing", now); !slices.Equal(d.Reasons, []string{"too_many_uses"}) {
		t.Fatalf("after the data change: %+v", d)
	}
	rev = e.Revision()
	fsys[".old/x.rego"] = &fstest.MapFile{Data: []byte("package tokengate.gateway\nreasons contains \"hidden\"\n")}
	if _, err := e.Reload(); err != nil || e.Revision() != rev {
		t.Fatalf("a hidden file was loaded: %v, revision %s, was %s", err, e.Revision(), rev)
	}
}

// Data may not define what a rule defines, and a broken data file is
// refused like a broken policy.
func TestBadDataIsRefused(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"reasons from data": {
			"gateway.rego":                {Data: []byte("package tokengate.gateway\nreasons contains \"x\" if input.now < 0\n")},
			"tokengate/gateway/data.json": {Data: []byte(`{"reasons": []}`)},
		},
		"broken json": {
			"gateway.rego":  {Data: []byte(dataPolicy)},
			"x/y/data.json": {Data: []byte(`{"blocked": [`)},
		},
	} {
		_, err := NewEngine(fsys)
		if want := map[string]string{"reasons from data": "conflicting rule", "broken json": "x/y/data.json"}[name]; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming %q", name, err, want)
		}
	}
}

// print() output goes to the logger the app names tokengate.policy, with
// the file:line of the call.
func TestPrintGoesToTheLogger(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	fsys := fstest.MapFS{"gateway.rego": {Data: []byte(`package tokengate.gateway

reasons contains "x" if {
	print("checking", input.token.owner)
	input.token.uses > 100
}
`)}}
	e, err := NewEngine(fsys, WithPrintLogger(zap.New(core).Named("tokengate.policy")))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	decide(t, e, sampleToken(now), Request{}, "billing", now)
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("got %d log lines, want 1", len(entries))
	}
	got := entries[0]
	if got.LoggerName != "tokengate.policy" || got.Message != "checking alice" || !strings.HasPrefix(got.ContextMap()["location"].(string), "gateway.rego:4") {
		t.Fatalf("got %q from %s at %v", got.Message, got.LoggerName, got.ContextMap())
	}
	// Without a logger, print is compiled out and costs nothing.
	e, err = NewEngine(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Decide(context.Background(), GatewayQuery, GatewayInput(TokenTerm(sampleToken(now)), Request{}, "billing", now)); err != nil {
		t.Fatal(err)
	}
}

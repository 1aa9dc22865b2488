package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// shippedWith copies the shipped policies and appends src to one of them,
// returning the copy and the line src starts on.
func shippedWith(t *testing.T, file, src string) (fstest.MapFS, int) {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS, p)
		fsys[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	orig := string(fsys[file].Data)
	if !strings.HasSuffix(orig, "\n") {
		orig += "\n"
	}
	line := strings.Count(orig, "\n") + 2
	fsys[file] = &fstest.MapFile{Data: []byte(orig + "\n" + src)}
	return fsys, line
}

// A misspelt input field is a compile error naming file:line, in the
// gateway and the admin package alike: it is never a rule that silently
// never holds (a revocation check on input.token.revokedAt would have let
// revoked tokens through).
func TestMisspeltInputFieldIsACompileError(t *testing.T) {
	for _, c := range []struct{ file, src, field string }{
		{"gateway.rego", "reasons contains \"token_revoked\" if input.token.revokedAt > 0\n", "revokedAt"},
		{"gateway.rego", "reasons contains \"path_forbidden\" if startswith(input.request.pathname, \"/x\")\n", "pathname"},
		{"admin.rego", "denials contains \"not_owner\" if input.actor.principle != input.token.owner\n", "principle"},
		{"admin.rego", "denials contains \"ttl_exceeds_max\" if input.request.ttl > input.config.max_ttl_seconds\n", "ttl"},
	} {
		fsys, line := shippedWith(t, c.file, c.src)
		_, err := NewEngine(fsys)
		if err == nil {
			t.Errorf("%s: input.…%s compiled", c.file, c.field)
			continue
		}
		if want := fmt.Sprintf("%s:%d:", c.file, line); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %q does not name %s and %s", c.file, err, want, c.field)
		}
	}
	// The correct spellings compile.
	fsys, _ := shippedWith(t, "gateway.rego", "reasons contains \"path_forbidden\" if startswith(input.request.raw_path, \"/x\")\n")
	if _, err := NewEngine(fsys); err != nil {
		t.Fatalf("a rule on input.request.raw_path: %v", err)
	}
}

// Strict mode refuses what is almost always a mistake, such as a variable
// assigned and never used.
func TestStrictModeRefusesUnusedVariables(t *testing.T) {
	fsys, line := shippedWith(t, "gateway.rego", "reasons contains \"odd\" if {\n\tx := input.token.uses\n\tinput.token.max_uses > 1\n}\n")
	_, err := NewEngine(fsys)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("gateway.rego:%d:", line+1)) {
		t.Fatalf("got %v, want a strict-mode error on gateway.rego:%d", err, line+1)
	}
}

// A builtin's error is an evaluation error, so the gateway answers 503: it
// is not a reason rule quietly coming out undefined, which would allow.
func TestBuiltinErrorIsAnErrorNotAnAllow(t *testing.T) {
	fsys, _ := shippedWith(t, "gateway.rego", "reasons contains \"too_many\" if to_number(input.request.host) > 10\n")
	e, err := NewEngine(fsys)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req := Request{Method: "GET", Host: "api.example.com", Path: "/billing/x", RawPath: "/billing/x", RemoteIP: "10.1.1.1"}
	d, err := e.Decide(context.Background(), GatewayQuery, GatewayInput(TokenTerm(sampleToken(now)), req, "billing", now))
	if err == nil || !strings.Contains(err.Error(), "to_number") {
		t.Fatalf("got %+v, %v; want the to_number error", d, err)
	}
	req.Host = "3"
	if d, err := e.Decide(context.Background(), GatewayQuery, GatewayInput(TokenTerm(sampleToken(now)), req, "billing", now)); err != nil || !d.Allow {
		t.Fatalf("a host that is a number: got %+v, %v; want allow", d, err)
	}
}

// The input the gateway builds is what the schema describes: the shipped
// policy reading every field compiles, and GatewayInput has exactly the
// schema's fields.
func TestGatewayInputMatchesItsSchema(t *testing.T) {
	now := time.Now()
	// A token with a limit of its own, so rate_limit is there.
	in := GatewayInput(TokenTerm(&store.Token{ID: "tok_x", RateLimit: store.RateLimit{Requests: 5, Window: time.Minute}}), Request{Headers: map[string]string{"x-team": "a"}}, "billing", now)
	schema := inputSchemaObject(t, "gateway_input")
	var walk func(path string, v any, s map[string]any)
	walk = func(path string, v any, s map[string]any) {
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		props, _ := s["properties"].(map[string]any)
		if props == nil {
			return // headers: any name
		}
		for k := range obj {
			if _, ok := props[k]; !ok {
				t.Errorf("input has %s.%s, the schema does not", path, k)
			}
		}
		for k, p := range props {
			if _, ok := obj[k]; !ok {
				t.Errorf("the schema has %s.%s, input does not", path, k)
				continue
			}
			walk(path+"."+k, obj[k], p.(map[string]any))
		}
	}
	var v any
	if err := jsonValue(in, &v); err != nil {
		t.Fatal(err)
	}
	walk("input", v, schema)
}

func inputSchemaObject(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := policies.Schemas.ReadFile("schemas/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func jsonValue(v ast.Value, out *any) (err error) {
	*out, err = ast.JSON(v)
	return err
}

// A helper package outside tokengate.gateway and tokengate.admin is
// checked against the fields either input has.
func TestHelperPackagesAreTypeChecked(t *testing.T) {
	fsys, _ := shippedWith(t, "gateway.rego", "reasons contains \"helper\" if data.lib.odd\n")
	fsys["lib/lib.rego"] = &fstest.MapFile{Data: []byte("package lib\n\nodd if input.token.uses > input.actor.scopes[0]\n")}
	if _, err := NewEngine(fsys); err != nil {
		t.Fatalf("fields of the gateway and admin inputs: %v", err)
	}
	fsys["lib/lib.rego"] = &fstest.MapFile{Data: []byte("package lib\n\nodd if input.token.revokedAt > 0\n")}
	if _, err := NewEngine(fsys); err == nil || !strings.Contains(err.Error(), "lib/lib.rego:3:") {
		t.Fatalf("got %v, want a type error at lib/lib.rego:3", err)
	}
}

package policy

import (
	"io/fs"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/tokengate/caddy-tokengate/policies"
)

func readsOf(t *testing.T, files fs.FS) Reads {
	t.Helper()
	e, err := NewEngine(files)
	if err != nil {
		t.Fatal(err)
	}
	_, r := e.GatewayReads()
	return *r
}

func gatewayFiles(src string, more ...string) fstest.MapFS {
	files := fstest.MapFS{"gateway.rego": {Data: []byte("package tokengate.gateway\n\n" + src + "\n")}}
	for i := 0; i+1 < len(more); i += 2 {
		files[more[i]] = &fstest.MapFile{Data: []byte(more[i+1])}
	}
	return files
}

// The shipped policy reads the method (read or write) and, for tokens
// bound to CIDRs, the client address; never the path, host or headers.
// The admin package beside it, which the gateway rules never reach, does
// not count.
func TestShippedPolicyReads(t *testing.T) {
	got := readsOf(t, policies.FS)
	want := Reads{Method: true, RemoteIPWithCIDRs: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reads %+v, want %+v", got, want)
	}
}

// A field counts as read however the rule reaches it.
func TestReadsFollowWhatRulesReach(t *testing.T) {
	for _, c := range []struct {
		name  string
		files fstest.MapFS
		want  Reads
	}{
		{"nothing", gatewayFiles(`reasons contains "no" if input.token.uses < 0`), Reads{}},
		{"route and now", gatewayFiles(`reasons contains "no" if { input.route.service == "x"; input.now < 0 }`), Reads{}},
		{"path", gatewayFiles(`reasons contains "no" if input.request.path == "/admin"`), Reads{Path: true}},
		{"raw path in a comprehension", gatewayFiles(`reasons contains "no" if count([p | p := input.request.raw_path; p != ""]) == 0`), Reads{RawPath: true}},
		{"host through a function", gatewayFiles(`
internal(h) if endswith(h, ".internal")

reasons contains "no" if internal(input.request.host)`), Reads{Host: true}},
		{"a function reading input itself", gatewayFiles(`
on_admin if startswith(input.request.path, "/admin")

reasons contains "no" if on_admin`), Reads{Path: true}},
		{"a named header", gatewayFiles(`reasons contains "no" if input.request.headers["x-tenant"] == "evil"`), Reads{Headers: []string{"x-tenant"}}},
		{"another package", gatewayFiles(`
import data.tokengate.lib

reasons contains "no" if lib.blocked`,
			"lib.rego", "package tokengate.lib\n\nblocked if input.request.method == \"TRACE\"\n"), Reads{Method: true}},
		{"a dynamic reference into data", gatewayFiles(`
reasons contains code if {
	some code
	data.tokengate.extra[code]
}`,
			"extra.rego", "package tokengate.extra\n\nwrong_host if input.request.host == \"x\"\n"), Reads{Host: true}},
		{"client address after a CIDR", gatewayFiles(`
reasons contains "no" if {
	some cidr in input.token.cidrs
	not net.cidr_contains(cidr, input.request.remote_ip)
}`), Reads{RemoteIPWithCIDRs: true}},
		{"client address in the head after a CIDR", gatewayFiles(`
reasons contains input.request.remote_ip if input.token.cidrs[0] == "10.0.0.0/8"`), Reads{RemoteIPWithCIDRs: true}},
		// Every other placement reads the client address for every token.
		{"client address before the CIDR", gatewayFiles(`
reasons contains "no" if {
	input.request.remote_ip == "10.0.0.1"
	some cidr in input.token.cidrs
	cidr != ""
}`), Reads{RemoteIP: true}},
		{"client address under every", gatewayFiles(`
reasons contains "no" if {
	every cidr in input.token.cidrs {
		net.cidr_contains(cidr, input.request.remote_ip)
	}
}`), Reads{RemoteIP: true}},
		{"CIDR under not", gatewayFiles(`
reasons contains "no" if {
	not input.token.cidrs[0]
	input.request.remote_ip == "10.0.0.1"
}`), Reads{RemoteIP: true}},
		{"CIDR count", gatewayFiles(`
reasons contains "no" if {
	count(input.token.cidrs) == 0
	input.request.remote_ip == "10.0.0.1"
}`), Reads{RemoteIP: true}},
		{"client address in a function called after a CIDR", gatewayFiles(`
inside(cidr) if net.cidr_contains(cidr, input.request.remote_ip)

reasons contains "no" if {
	some cidr in input.token.cidrs
	not inside(cidr)
}`), Reads{RemoteIP: true}},
		{"guarded and unguarded", gatewayFiles(`
reasons contains "no" if {
	some cidr in input.token.cidrs
	not net.cidr_contains(cidr, input.request.remote_ip)
}

reasons contains "local" if input.request.remote_ip == "127.0.0.1"`), Reads{RemoteIP: true, RemoteIPWithCIDRs: true}},
		{"else branch", gatewayFiles(`
kind := "a" if input.request.method == "GET"
else := "b" if input.request.remote_ip == ""
else := "c"

reasons contains kind if false`), Reads{Method: true, RemoteIP: true}},
		{"a mocked function", gatewayFiles(`
ok(_) := true

strict(x) := x == input.request.host

reasons contains "no" if not ok(1) with ok as strict`), Reads{Host: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := readsOf(t, c.files); !reflect.DeepEqual(got, c.want) {
				t.Errorf("reads %+v, want %+v", got, c.want)
			}
		})
	}
}

// Whatever reaches input as a whole, or by a key only known at evaluation,
// or rewrites it with `with`, falls back to the full key.
func TestReadsFallBackToEverything(t *testing.T) {
	for name, src := range map[string]string{
		"input[x]": `reasons contains "no" if {
	some k
	input[k].path == "/x"
}`,
		"input.request[x]": `reasons contains "no" if {
	some k
	input.request[k] == "/x"
}`,
		"walk(input)":             `reasons contains "no" if { walk(input, [p, v]); p[0] == "request"; v == "/x" }`,
		"json.marshal(input)":     `reasons contains "no" if contains(json.marshal(input), "/admin")`,
		"object.get(input)":       `reasons contains "no" if object.get(input, ["request", "path"], "") == "/x"`,
		"input assigned":          `reasons contains "no" if { i := input; i.request.path == "/x" }`,
		"input in a function":     "on_admin(i) if i.request.path == \"/admin\"\n\nreasons contains \"no\" if on_admin(input)",
		"request in a builtin":    `reasons contains "no" if contains(json.marshal(input.request), "/admin")`,
		"with input.request.path": "blocked if input.request.method == \"GET\"\n\nreasons contains \"no\" if blocked with input.request.path as \"/x\"",
		"with input":              "blocked if input.request.method == \"GET\"\n\nreasons contains \"no\" if blocked with input as {\"request\": {\"method\": \"GET\"}}",
	} {
		t.Run(name, func(t *testing.T) {
			if got := readsOf(t, gatewayFiles(src)); !reflect.DeepEqual(got, readsAll) {
				t.Errorf("reads %+v, want everything", got)
			}
		})
	}
	// Headers by a variable name: every header, nothing else.
	got := readsOf(t, gatewayFiles(`reasons contains "no" if {
	some name
	input.request.headers[name] == "evil"
}`))
	if want := (Reads{AllHeaders: true}); !reflect.DeepEqual(got, want) {
		t.Errorf("headers[k]: reads %+v, want %+v", got, want)
	}
}

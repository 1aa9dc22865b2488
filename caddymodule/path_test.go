package caddymodule

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/caddy-tokengate/internal/gatehttp"
	"github.com/tokengate/caddy-tokengate/policies"
)

// privatePolicy is a rule a user adds in the style of the shipped ones.
const privatePolicy = `package tokengate.gateway

reasons contains "path_forbidden" if startswith(input.request.path, "/billing/private/")
`

// policyCopy writes the shipped policies plus the given extra files to a
// new folder and returns it.
func policyCopy(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// rawCall sends target exactly as written in the request line, which
// Go's client would otherwise parse and re-encode.
func (e *env) rawCall(t *testing.T, target, secret string) response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.gateURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", target, secret)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: body}
	var parsed struct{ Reason string }
	if json.Unmarshal(body, &parsed) == nil {
		r.reason = parsed.Reason
	}
	return r
}

// upstreamTargets returns the request targets the upstream received, as
// they were on its request line.
func (u *upstream) targets() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, r := range u.requests {
		out = append(out, r.RequestURI)
	}
	return out
}

// TestPolicySeesTheCleanedPath: another spelling of a path a policy
// refuses is refused too, with the decision cache on, and a spelling
// that means more than one path is refused as invalid. What is allowed
// reaches the upstream as the path that was authorized.
func TestPolicySeesTheCleanedPath(t *testing.T) {
	t.Parallel()
	dir := policyCopy(t, map[string]string{"private.rego": privatePolicy})
	e := newEnv(t, envOptions{decisionCache: 1000, policyDir: dir})
	secret, _ := e.issue(billingReader(nil))

	// The plain spelling, first, so its deny is in the decision cache.
	if r := e.rawCall(t, "/billing/private/k0", secret); r.status != 403 || r.reason != "path_forbidden" {
		t.Fatalf("/billing/private/k0: %d %s", r.status, r.body)
	}

	forbidden := []struct{ name, target, clean string }{
		{"dot dot", "/billing/a/../private/k1", "/billing/private/k1"},
		{"double slash", "/billing//private/k2", "/billing/private/k2"},
		{"dot", "/billing/./private/k3", "/billing/private/k3"},
		{"leading double slash", "//billing/private/k4", "/billing/private/k4"},
		{"encoded letter", "/billing/%70rivate/k6", "/billing/private/k6"},
		{"the cached one, cached", "/billing/public/../private/k0", "/billing/private/k0"},
	}
	for _, c := range forbidden {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.upstream.targets())
			r := e.rawCall(t, c.target, secret)
			if r.status != 403 || r.reason != "path_forbidden" {
				t.Fatalf("%s: %d %s, want 403 path_forbidden", c.target, r.status, r.body)
			}
			if got := e.upstream.targets(); len(got) != before {
				t.Errorf("%s reached the upstream: %v", c.target, got[before:])
			}
			if c.clean == "/billing/private/k0" {
				return // two lines carry that path; the first call checked it
			}
			line := e.auditFor(c.clean)
			if line["decision"] != "deny" || line["status"] != 403.0 || fmt.Sprint(line["reasons"]) != "[path_forbidden]" {
				t.Errorf("audit line of %s: %v", c.target, line)
			}
		})
	}

	// Spellings that Caddy, the policy and some upstream could resolve to
	// different resources: refused before any lookup, whatever the policy.
	invalid := []struct{ name, target string }{
		{"encoded dot dot", "/billing/%2e%2e/billing/private/k"},
		{"encoded dot dot, upper case", "/billing/public/%2E%2E/private/k"},
		{"half encoded dot dot", "/billing/public/.%2e/private/k"},
		{"encoded dot", "/billing/%2e/private/k"},
		{"encoded slash", "/billing/private%2Fk"},
		{"encoded slash, lower case", "/billing/public%2f..%2fprivate/k"},
		{"dot dot before an encoded slash", "/billing/public/..%2Fprivate/k"},
		{"backslash", `/billing/public\..\private\k`},
		{"encoded backslash", "/billing/public/..%5Cprivate/k"},
		{"path parameter", "/billing/private;x=1/k"},
		{"encoded path parameter", "/billing/private%3B/k"},
		{"double encoded dot dot", "/billing/public/%252e%252e/private/k"},
		{"encoded NUL", "/billing/public%00/../private/k"},
		{"encoded question mark", "/billing/private%3F/../public/k"},
		{"encoded hash", "/billing/public/k%23x"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.upstream.targets())
			r := e.rawCall(t, c.target, secret)
			if r.status != 400 || r.reason != "path_invalid" {
				t.Fatalf("%s: %d %s, want 400 path_invalid", c.target, r.status, r.body)
			}
			if got := e.upstream.targets(); len(got) != before {
				t.Errorf("%s reached the upstream: %v", c.target, got[before:])
			}
			u, err := url.ParseRequestURI(c.target)
			if err != nil {
				t.Fatal(err)
			}
			line := e.auditFor(u.EscapedPath())
			if line["decision"] != "deny" || line["status"] != 400.0 || fmt.Sprint(line["reasons"]) != "[path_invalid]" {
				t.Errorf("audit line of %s: %v", c.target, line)
			}
		})
	}

	// What may pass reaches the upstream as the path the policy allowed,
	// in the client's encoding where that encoding is harmless.
	allowed := []struct{ name, target, upstream string }{
		{"allowed, plain", "/billing/public/k1", "/billing/public/k1"},
		{"allowed, dot dot", "/billing/private/../public/k2", "/billing/public/k2"},
		{"allowed, double slash", "/billing//public//k3/", "/billing/public/k3/"},
		{"allowed, encoded space", "/billing/public/a%20b", "/billing/public/a%20b"},
		{"allowed, encoded dot in a name", "/billing/public/report%2Epdf", "/billing/public/report%2Epdf"},
		{"allowed, encoded letters, dot dot", "/billing/%70rivate/../public/k4?page=2", "/billing/public/k4?page=2"},
	}
	for _, c := range allowed {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.upstream.targets())
			r := e.rawCall(t, c.target, secret)
			if r.status != 200 {
				t.Fatalf("%s: %d %s, want 200", c.target, r.status, r.body)
			}
			got := e.upstream.targets()
			if len(got) != before+1 || got[before] != c.upstream {
				t.Errorf("%s: upstream received %v, want %s", c.target, got[before:], c.upstream)
			}
			clean, _ := url.PathUnescape(strings.Split(c.upstream, "?")[0])
			if line := e.auditFor(clean); line["decision"] != "allow" {
				t.Errorf("audit line of %s: %v", c.target, line)
			}
		})
	}
}

// cleanPathWithCaddy is gatehttp.CleanPath as it was written when it
// lived here, on caddyhttp.CleanPath: the reference the moved one is held
// to.
func cleanPathWithCaddy(p, raw string) (clean, escaped string, ok bool) {
	if p == "" {
		return "/", "/", true
	}
	if p[0] != '/' {
		return "", "", false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || strings.IndexByte("\x7f\\;%?#", c) >= 0 {
			return "", "", false
		}
	}
	clean = caddyhttp.CleanPath(p, true)
	if raw == p {
		return clean, clean, true
	}
	if strings.Contains(raw, "%2F") || strings.Contains(raw, "%2f") {
		return "", "", false
	}
	escaped = caddyhttp.CleanPath(raw, true)
	if decoded, err := url.PathUnescape(escaped); err != nil || decoded != clean {
		return "", "", false
	}
	return clean, escaped, true
}

// TestCleanPathMatchesCaddy holds gatehttp.CleanPath, which needs no
// Caddy, to what Caddy's path matchers see: over every path of up to four
// segments from a set of awkward ones, with and without a trailing slash,
// it answers as cleanPathWithCaddy does, and what it accepts is cleaned as
// caddyhttp.CleanPath cleans it.
func TestCleanPathMatchesCaddy(t *testing.T) {
	t.Parallel()
	segments := []string{"", "a", ".", "..", "...", ".a", "a.", "%2e", "%2E%2e", ".%2E", "%2e.", "a%2Fb", "%2f", "%20", "%70df", "%25", "x%3Fy", "%23", ";p", "%3B", "\\", "%5C", "%00", "%7f", "~u", "%C3%A9", "é"}
	targets := []string{"*", "http://host", "http://host/a/../b", "/", "//", "///"}
	var build func(prefix string, depth int)
	build = func(prefix string, depth int) {
		if depth == 0 {
			return
		}
		for _, seg := range segments {
			p := prefix + "/" + seg
			targets = append(targets, p, p+"/", p+"//")
			build(p, depth-1)
		}
	}
	build("", 4)
	checked := 0
	for _, target := range targets {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			continue
		}
		checked++
		clean, escaped, ok := gatehttp.CleanPath(u.Path, u.EscapedPath())
		wantClean, wantEscaped, wantOK := cleanPathWithCaddy(u.Path, u.EscapedPath())
		if clean != wantClean || escaped != wantEscaped || ok != wantOK {
			t.Fatalf("%q: %q %q %v, Caddy's cleaning gives %q %q %v", target, clean, escaped, ok, wantClean, wantEscaped, wantOK)
		}
		if ok && u.Path != "" && clean != caddyhttp.CleanPath(u.Path, true) {
			t.Fatalf("%q: clean %q, Caddy cleans to %q", target, clean, caddyhttp.CleanPath(u.Path, true))
		}
	}
	if checked < 500000 {
		t.Fatalf("only %d paths checked", checked)
	}
}

// FuzzCleanPath checks that what gatehttp.CleanPath accepts is cleaned exactly as
// Caddy's path matchers clean it, shortcut included.
func FuzzCleanPath(f *testing.F) {
	for _, seed := range []string{"/", "/a/b", "/a//b", "/a/./b", "/a/../b", "/a/.", "/a/..", "/.a/b.", "/a/b/", "//", "/%2e%2e/a", "/a%2Fb", "/a%20b/../c"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Path == "" {
			return // an empty path is "/", see gatehttp's TestCleanPathOutsideRoutes
		}
		clean, escaped, ok := gatehttp.CleanPath(u.Path, u.EscapedPath())
		if !ok {
			return
		}
		if want := caddyhttp.CleanPath(u.Path, true); clean != want {
			t.Fatalf("%q: clean %q, Caddy cleans to %q", target, clean, want)
		}
		if decoded, err := url.PathUnescape(escaped); err != nil || decoded != clean {
			t.Fatalf("%q: escaped %q does not decode to %q", target, escaped, clean)
		}
	})
}

// TestRawPathIsPartOfTheDecision: a policy may refuse on input.raw_path,
// so two spellings of one cleaned path never share a cached decision.
func TestRawPathIsPartOfTheDecision(t *testing.T) {
	t.Parallel()
	dir := policyCopy(t, map[string]string{"raw.rego": `package tokengate.gateway

reasons contains "path_unclean" if input.request.raw_path != input.request.path
`})
	e := newEnv(t, envOptions{decisionCache: 1000, policyDir: dir})
	secret, _ := e.issue(billingReader(nil))
	if r := e.rawCall(t, "/billing/raw/k", secret); r.status != 200 {
		t.Fatalf("/billing/raw/k: %d %s", r.status, r.body)
	}
	for _, target := range []string{"/billing/./raw/k", "/billing//raw/k", "/billing/x/../raw/k"} {
		before := len(e.upstream.targets())
		if r := e.rawCall(t, target, secret); r.status != 403 || r.reason != "path_unclean" {
			t.Errorf("%s after the clean spelling was allowed: %d %s, want 403 path_unclean", target, r.status, r.body)
		}
		if got := e.upstream.targets(); len(got) != before {
			t.Errorf("%s reached the upstream: %v", target, got[before:])
		}
	}
}

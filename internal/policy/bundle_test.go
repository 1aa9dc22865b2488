package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/opabundle"
	"github.com/tokengate/caddy-tokengate/policies"
)

// refuseSearch is a policy change a new bundle revision brings: calls to
// service search are refused.
var refuseSearch = map[string]string{"refuse.rego": "package tokengate.gateway\n\nreasons contains \"search_closed\" if input.route.service == \"search\"\n"}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

func newBundle(t *testing.T, location string, o BundleOptions) *Bundle {
	t.Helper()
	b, err := NewBundle(location, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readKey(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A bundle built by `opa build` from the shipped policies decides as the
// folder does, and its revision is the manifest's plus the file's hash.
func TestBundleFileDecidesAsTheFolder(t *testing.T) {
	dir := t.TempDir()
	path := opabundle.Build(t, opabundle.Policies(t, nil), filepath.Join(dir, "bundle.tar.gz"), "2026-01-05.3")
	e, err := NewBundleEngine(context.Background(), newBundle(t, path, BundleOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if want := "2026-01-05.3+" + fileHash(t, path); e.Revision() != want {
		t.Fatalf("revision %q, want %q", e.Revision(), want)
	}
	folder, err := NewEngine(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Has(AdminQuery) {
		t.Error("the bundle's admin package is missing")
	}
	now := time.Now()
	get := Request{Method: "GET", Host: "h", Path: "/billing/x", RemoteIP: "10.1.1.1"}
	for _, svc := range []string{"billing", "search"} {
		for _, method := range []string{"GET", "POST", "DELETE"} {
			req := get
			req.Method = method
			got, want := decide(t, e, sampleToken(now), req, svc, now), decide(t, folder, sampleToken(now), req, svc, now)
			if got.Allow != want.Allow || !slices.Equal(got.Reasons, want.Reasons) {
				t.Errorf("%s %s: bundle %+v, folder %+v", method, svc, got, want)
			}
		}
	}
}

// Without a manifest revision, a bundle's revision is shaped like a
// folder's: 12 hex digits.
func TestBundleWithoutRevision(t *testing.T) {
	path := opabundle.Build(t, opabundle.Policies(t, nil), filepath.Join(t.TempDir(), "b.tar.gz"), "")
	e, err := NewBundleEngine(context.Background(), newBundle(t, path, BundleOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if e.Revision() != fileHash(t, path) {
		t.Fatalf("revision %q, want the file hash %s", e.Revision(), fileHash(t, path))
	}
}

func TestBundleSignatures(t *testing.T) {
	dir := t.TempDir()
	src := opabundle.Policies(t, nil)
	priv, pub := opabundle.KeyPair(t, dir, "signing")
	_, otherPub := opabundle.KeyPair(t, dir, "other")
	signed := opabundle.Build(t, src, filepath.Join(dir, "signed.tar.gz"), "v1", opabundle.Signed(priv)...)
	unsigned := opabundle.Build(t, src, filepath.Join(dir, "unsigned.tar.gz"), "v1")
	tampered := opabundle.Build(t, src, filepath.Join(dir, "tampered.tar.gz"), "v1", opabundle.Signed(priv)...)
	// A changed rule body, same length: still a valid archive and policy.
	opabundle.Tamper(t, tampered, `"scope_missing"`, `"scope_mizzing"`)
	corrupt := opabundle.Build(t, src, filepath.Join(dir, "corrupt.tar.gz"), "v1", opabundle.Signed(priv)...)
	opabundle.FlipByte(t, corrupt)

	key, otherKey := readKey(t, pub), readKey(t, otherPub)
	if _, err := NewBundleEngine(context.Background(), newBundle(t, signed, BundleOptions{VerifyKey: key})); err != nil {
		t.Fatalf("signed bundle with its key: %v", err)
	}
	refused := []struct {
		name string
		path string
		key  []byte
		want string
	}{
		{"signed, no key configured", signed, nil, "verification key not provided"},
		{"signed with another key", signed, otherKey, "failed to verify JWT signature"},
		{"unsigned, key configured", unsigned, key, "missing .signatures.json"},
		{"content changed after signing", tampered, key, "digest mismatch"},
		{"a byte flipped", corrupt, key, "reading bundle"},
	}
	for _, c := range refused {
		_, err := NewBundleEngine(context.Background(), newBundle(t, c.path, BundleOptions{VerifyKey: c.key}))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestBundleKeyChecks(t *testing.T) {
	dir := t.TempDir()
	priv, pub := opabundle.KeyPair(t, dir, "k")
	for _, c := range []struct {
		name string
		o    BundleOptions
		want string
	}{
		{"private key", BundleOptions{VerifyKey: readKey(t, priv)}, "private key"},
		{"not PEM", BundleOptions{VerifyKey: []byte("ssh-rsa AAAA")}, "not PEM"},
		{"HMAC", BundleOptions{VerifyKey: readKey(t, pub), VerifyAlg: "HS256"}, "key pair"},
		{"unknown algorithm", BundleOptions{VerifyKey: readKey(t, pub), VerifyAlg: "none"}, "unsupported"},
		{"algorithm without key", BundleOptions{VerifyAlg: "RS256"}, "without a verification key"},
	} {
		_, err := NewBundle(filepath.Join(dir, "b.tar.gz"), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("%s: the error echoes the key", c.name)
		}
	}
	if _, err := NewBundle("https://user:pw@bundles.example.com/b.tar.gz", BundleOptions{}); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("credentials in the URL: got %v, want a refusal that does not echo them", err)
	}
}

// A bundle file is polled: a new build is picked up, a broken one is
// refused while the previous revision serves.
func TestBundleFilePolling(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.tar.gz")
	opabundle.Build(t, opabundle.Policies(t, nil), path, "v1")
	b := newBundle(t, path, BundleOptions{})
	e, err := NewBundleEngine(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	reports := startPolling(t, e, b)
	v2 := opabundle.Build(t, opabundle.Policies(t, refuseSearch), filepath.Join(dir, "v2.tar.gz"), "v2")
	replace(t, v2, path)
	rev := nextReport(t, reports)
	if rev.err != nil || !strings.HasPrefix(rev.rev, "v2+") || e.Revision() != rev.rev {
		t.Fatalf("after the swap: %+v, in force %s", rev, e.Revision())
	}
	now := time.Now()
	tok := sampleToken(now)
	tok.Services = append(tok.Services, "search")
	tok.Scopes = append(tok.Scopes, "search:read")
	if d := decide(t, e, tok, Request{Method: "GET", Host: "h", Path: "/search/x", RemoteIP: "10.1.1.1"}, "search", now); d.Allow || !slices.Contains(d.Reasons, "search_closed") {
		t.Fatalf("v2 should refuse search: %+v", d)
	}
	// A bundle whose policy does not compile.
	broken := opabundle.Policies(t, nil)
	if err := os.WriteFile(filepath.Join(broken, "gateway.rego"), []byte("package tokengate.gateway\n\nreasons contains r if r := input.no_such_field\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	replace(t, opabundle.Build(t, broken, filepath.Join(dir, "v3.tar.gz"), "v3"), path)
	if r := nextReport(t, reports); r.err == nil || !strings.Contains(r.err.Error(), "no_such_field") {
		t.Fatalf("broken bundle: %+v", r)
	}
	if e.Revision() != rev.rev {
		t.Fatalf("the broken bundle replaced %s with %s", rev.rev, e.Revision())
	}
}

type report struct {
	rev string
	err error
}

// startPolling polls b every 50ms until the test ends.
func startPolling(t *testing.T, e *Engine, b *Bundle) chan report {
	t.Helper()
	reports := make(chan report, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.PollBundle(ctx, b, 50*time.Millisecond, func(rev string, err error) { reports <- report{rev, err} })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return reports
}

func nextReport(t *testing.T, reports chan report) report {
	t.Helper()
	select {
	case r := <-reports:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no report from the poller")
		return report{}
	}
}

// replace puts src at dst with a rename, as a deployment would.
func replace(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + fmt.Sprintf(".tmp%d", time.Now().UnixNano())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

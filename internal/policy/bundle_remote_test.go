package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/testutil/opabundle"
)

func TestMain(m *testing.M) {
	code := m.Run()
	caddyproc.RemoveBinary()
	os.Exit(code)
}

// bundleServer is a real Caddy process serving a folder with file_server,
// as a bundle service would (it answers If-None-Match with 304).
type bundleServer struct {
	site, accessLog, url string
}

func startBundleServer(t *testing.T) *bundleServer {
	t.Helper()
	dir := t.TempDir()
	s := &bundleServer{site: filepath.Join(dir, "site"), accessLog: filepath.Join(dir, "access.log")}
	if err := os.MkdirAll(s.site, 0o755); err != nil {
		t.Fatal(err)
	}
	port, admin := caddyproc.FreePort(t), caddyproc.FreePort(t)
	s.url = fmt.Sprintf("http://127.0.0.1:%d/tokengate.tar.gz", port)
	caddyproc.Start(t, filepath.Join(dir, "caddy"), fmt.Sprintf("127.0.0.1:%d", admin), fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	skip_install_trust
}
http://127.0.0.1:%d {
	root * %s
	file_server
	log {
		output file %s
		format json
	}
}
`, admin, port, s.site, s.accessLog))
	return s
}

// statuses returns the status of every request the server logged.
func (s *bundleServer) statuses(t *testing.T) []int {
	t.Helper()
	f, err := os.Open(s.accessLog)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct{ Status int }
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			out = append(out, line.Status)
		}
	}
	return out
}

// A signed bundle served by Caddy's file_server: each new revision is
// put in force, each bad one (tampered, corrupt, gone, unsigned, signed
// with another key) is refused while the last good one serves, and an
// unchanged bundle costs a 304.
func TestBundleServicePolling(t *testing.T) {
	srv := startBundleServer(t)
	dir := t.TempDir()
	priv, pub := opabundle.KeyPair(t, dir, "signing")
	otherPriv, _ := opabundle.KeyPair(t, dir, "other")
	served := filepath.Join(srv.site, "tokengate.tar.gz")
	plain, closed := opabundle.Policies(t, nil), opabundle.Policies(t, refuseSearch)
	build := func(name, src, rev string, args ...string) string {
		return opabundle.Build(t, src, filepath.Join(dir, name), rev, args...)
	}
	replace(t, build("v1.tar.gz", plain, "v1", opabundle.Signed(priv)...), served)

	b := newBundle(t, srv.url, BundleOptions{VerifyKey: readKey(t, pub), Timeout: 5 * time.Second})
	e, err := NewBundleEngine(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1+" + fileHash(t, served); e.Revision() != want {
		t.Fatalf("revision %q, want %q", e.Revision(), want)
	}
	reports := startPolling(t, e, b)
	deadline := time.Now().Add(10 * time.Second)
	for !containsStatus(srv.statuses(t), http.StatusNotModified) {
		if time.Now().After(deadline) {
			t.Fatalf("no 304 for an unchanged bundle: the poller does not send the ETag; statuses %v", srv.statuses(t))
		}
		time.Sleep(50 * time.Millisecond)
	}

	v2 := build("v2.tar.gz", closed, "v2", opabundle.Signed(priv)...)
	replace(t, v2, served)
	r := nextReport(t, reports)
	if want := "v2+" + fileHash(t, v2); r.err != nil || r.rev != want || e.Revision() != want {
		t.Fatalf("after the swap: %+v, in force %s, want %s", r, e.Revision(), want)
	}
	good := r.rev

	tampered := build("tampered.tar.gz", closed, "v3", opabundle.Signed(priv)...)
	opabundle.Tamper(t, tampered, `"search_closed"`, `"search_opened"`)
	corrupt := build("corrupt.tar.gz", closed, "v3", opabundle.Signed(priv)...)
	opabundle.FlipByte(t, corrupt)
	refused := []struct {
		name    string
		install func()
		want    string
	}{
		{"tampered", func() { replace(t, tampered, served) }, "digest mismatch"},
		{"corrupt", func() { replace(t, corrupt, served) }, "downloading bundle"},
		{"404", func() { os.Remove(served) }, "Not Found"},
		{"unsigned", func() { replace(t, build("unsigned.tar.gz", plain, "v3"), served) }, "missing .signatures.json"},
		{"wrong key", func() { replace(t, build("other.tar.gz", plain, "v3", opabundle.Signed(otherPriv)...), served) }, "failed to verify"},
	}
	now := time.Now()
	tok := sampleToken(now)
	tok.Services, tok.Scopes = []string{"search"}, []string{"search:read"}
	search := Request{Method: "GET", Host: "h", Path: "/search/x", RemoteIP: "10.1.1.1"}
	for _, c := range refused {
		c.install()
		r := nextReport(t, reports)
		if r.err == nil || !strings.Contains(r.err.Error(), c.want) {
			t.Fatalf("%s: got %+v, want an error with %q", c.name, r, c.want)
		}
		if e.Revision() != good {
			t.Fatalf("%s: %s replaced %s", c.name, e.Revision(), good)
		}
		if d := decide(t, e, tok, search, "search", now); d.Allow || d.Revision != good {
			t.Fatalf("%s: the previous policy no longer decides: %+v", c.name, d)
		}
	}

	v4 := build("v4.tar.gz", plain, "v4", opabundle.Signed(priv)...)
	replace(t, v4, served)
	if r := nextReport(t, reports); r.err != nil || !strings.HasPrefix(r.rev, "v4+") {
		t.Fatalf("after the failures a good bundle is not picked up: %+v", r)
	}
	if d := decide(t, e, tok, search, "search", now); !d.Allow {
		t.Fatalf("v4 should allow search again: %+v", d)
	}
}

func containsStatus(statuses []int, want int) bool {
	for _, s := range statuses {
		if s == want {
			return true
		}
	}
	return false
}

// A bundle service that stalls, before its headers or in the middle of
// the body, fails the poll at the timeout, and the previous policy
// serves.
func TestBundleServiceStalls(t *testing.T) {
	dir := t.TempDir()
	v1 := opabundle.Build(t, opabundle.Policies(t, nil), filepath.Join(dir, "v1.tar.gz"), "v1")
	var body atomic.Pointer[[]byte]
	raw, err := os.ReadFile(v1)
	if err != nil {
		t.Fatal(err)
	}
	body.Store(&raw)
	const (
		serve = iota
		stallHeaders
		stallBody
	)
	var mode atomic.Int32
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := *body.Load()
		switch mode.Load() {
		case serve:
			w.Write(raw)
		case stallHeaders:
			<-r.Context().Done()
		case stallBody:
			w.Header().Set("Content-Length", fmt.Sprint(len(raw)))
			w.Write(raw[:len(raw)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	})}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })

	const timeout = 300 * time.Millisecond
	b := newBundle(t, "http://"+l.Addr().String()+"/b.tar.gz", BundleOptions{Timeout: timeout})
	e, err := NewBundleEngine(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	good := e.Revision()
	for _, m := range []int32{stallHeaders, stallBody} {
		mode.Store(m)
		start := time.Now()
		_, err := e.refresh(context.Background(), b)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "no complete answer within 300ms") {
			t.Errorf("mode %d: got %v, want a timeout", m, err)
		}
		if took < timeout || took > timeout+time.Second {
			t.Errorf("mode %d: the poll took %v with a timeout of %v", m, took, timeout)
		}
		if e.Revision() != good {
			t.Errorf("mode %d: revision %s, want %s still", m, e.Revision(), good)
		}
	}
	// Polling goes on after a stall.
	mode.Store(serve)
	v2 := opabundle.Build(t, opabundle.Policies(t, refuseSearch), filepath.Join(dir, "v2.tar.gz"), "v2")
	raw2, err := os.ReadFile(v2)
	if err != nil {
		t.Fatal(err)
	}
	body.Store(&raw2)
	if rev, err := e.refresh(context.Background(), b); err != nil || !strings.HasPrefix(rev, "v2+") {
		t.Fatalf("after the stalls: %q, %v", rev, err)
	}
}

package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/opabundle"
)

// A gzip bomb served as the policy bundle of a gateway with verify_key
// set is refused when Caddy loads the config, naming the bound, while
// Caddy's heap (this process's) grows by a small part of what the bomb
// inflates to; a lower max_bundle_bytes refuses it before inflating at all.
func TestGzipBombBundleThroughCaddy(t *testing.T) {
	const inflated = 16 * 32 << 20
	bomb := opabundle.GzipBomb(t, 16, 32<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(bomb)
	}))
	defer srv.Close()
	dir := t.TempDir()
	pub := filepath.Join(dir, "bundle-signing.pem")
	if err := os.WriteFile(pub, opabundle.PublicKeyPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	// In process and so not parallel: the heap measured is this
	// process's.
	e := newInProcessConfigEnv(t, dir, func(p envPorts) string { return pepperConfig(p, dir, "") })

	for _, c := range []struct{ extra, refusal string }{
		{"", "max_bundle_uncompressed_bytes (67108864 bytes)"},
		{"\n\t\t\tmax_bundle_bytes 100KiB", "max_bundle_bytes (102400 bytes)"},
	} {
		app := fmt.Sprintf("policy %s/bundles/tokengate.tar.gz {\n\t\t\tverify_key %s%s\n\t\t}", srv.URL, pub, c.extra)
		var status int
		var body string
		var before, after goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&before)
		status, body = e.loadConfig(t, pepperConfig(e.ports, dir, app))
		goruntime.ReadMemStats(&after)
		if status < 400 || !strings.Contains(body, c.refusal) {
			t.Errorf("%q: config loaded or refused otherwise: %d %s", c.extra, status, body)
		}
		allocated := after.TotalAlloc - before.TotalAlloc
		t.Logf("loading a config with a %d KiB bomb of %d MiB allocated %d MiB", len(bomb)>>10, inflated>>20, allocated>>20)
		if allocated > 64<<20 {
			t.Errorf("%q: loading allocated %d MiB for a bomb of %d MiB, want well under it", c.extra, allocated>>20, inflated>>20)
		}
	}
}

package caddymodule

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// A gzip bomb served as the policy bundle of a gateway with verify_key
// set is refused when Caddy loads the config, naming the bound, while
// Caddy's heap (this process's) grows by a small part of what the bomb
// inflates to; a lower max_bundle_bytes refuses it before inflating at all.
func TestGzipBombBundleThroughCaddy(t *testing.T) {
	const inflated = 16 * 32 << 20
	bomb := buildGzipBomb(t, 16, 32<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(bomb)
	}))
	defer srv.Close()
	dir := t.TempDir()
	pub := filepath.Join(dir, "bundle-signing.pem")
	if err := os.WriteFile(pub, rsaPublicKeyPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	caddytest.NewTester(t).InitServer(pepperConfig(dir, ""), "caddyfile")

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
		status, body = loadConfig(t, pepperConfig(dir, app))
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

// buildGzipBomb writes a bundle-shaped tar.gz of files data.json of size
// zero bytes each.
func buildGzipBomb(t *testing.T, files, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	zeros := make([]byte, 1<<20)
	for i := range files {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("/blob%02d/data.json", i), Mode: 0o644, Size: int64(size)}); err != nil {
			t.Fatal(err)
		}
		for written := 0; written < size; written += len(zeros) {
			if _, err := tw.Write(zeros[:min(len(zeros), size-written)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rsaPublicKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

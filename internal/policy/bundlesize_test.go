package policy

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/opabundle"
)

// bombInflated is what gzipBomb inflates to: 16 files of 32 MiB of
// zeros, each under OPA's own per-file bound, 512 MiB in all.
const bombInflated = 16 * 32 << 20

// gzipBomb is a bundle-shaped tar.gz of about half a megabyte that
// inflates to bombInflated bytes.
func gzipBomb(t testing.TB) []byte { return opabundle.GzipBomb(t, 16, 32<<20) }

// allocatedDuring is how many bytes f allocated on the heap (TotalAlloc
// grows with every allocation, freed or not, so a bundle inflated and
// dropped still counts).
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A gzip bomb, as a file and from a bundle service, with a verify key
// set, is refused for what it inflates to while the heap grows by a small
// part of that: it is never inflated into memory.
func TestGzipBombBundleIsRefusedBeforeItInflates(t *testing.T) {
	bomb := gzipBomb(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "bundle.tar.gz")
	if err := os.WriteFile(file, bomb, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(bomb)
	}))
	defer srv.Close()
	key := opabundle.PublicKeyPEM(t)
	for _, location := range []string{file, srv.URL + "/bundles/tokengate.tar.gz"} {
		b, err := NewBundle(location, BundleOptions{VerifyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		var fetchErr error
		allocated := allocatedDuring(func() { _, fetchErr = b.fetch(context.Background()) })
		if fetchErr == nil || !strings.Contains(fetchErr.Error(), "max_bundle_uncompressed_bytes") {
			t.Errorf("%s: %v, want a refusal naming max_bundle_uncompressed_bytes", location, fetchErr)
		}
		// The bound is 64 MiB; reading the bomb and inflating it into
		// nothing takes its compressed size and gzip's buffers.
		if allocated > 16<<20 {
			t.Errorf("%s: %d MiB allocated reading a %d KiB bomb of %d MiB, want under 16 MiB", location, allocated>>20, len(bomb)>>10, bombInflated>>20)
		}
		t.Logf("%s: %d KiB allocated for a %d KiB bomb of %d MiB", location, allocated>>10, len(bomb)>>10, bombInflated>>20)
	}
}

// The compressed bound stops reading a bundle as soon as it is passed.
func TestBundleOverMaxBytesIsRefused(t *testing.T) {
	big := make([]byte, 3<<20)
	rand.Read(big)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(big) }))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(file, big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, location := range []string{file, srv.URL + "/b.tar.gz"} {
		b, err := NewBundle(location, BundleOptions{MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "max_bundle_bytes (1048576 bytes)") {
			t.Errorf("%s: %v, want a refusal naming max_bundle_bytes", location, err)
		}
	}
}

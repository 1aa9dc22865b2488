// Package opabundle builds OPA bundles with the real `opa build` (the go
// tool pinned in go.mod) and makes signing key pairs, for tests of the
// bundle policy source.
package opabundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tokengate/caddy-tokengate/policies"
)

var (
	opaOnce sync.Once
	opaPath string
	opaErr  error
)

// goEnv is the environment before any TestMain pointed HOME and the XDG
// folders elsewhere: with those, go would find neither its build cache
// nor the module cache, and build OPA from nothing.
var goEnv = os.Environ()

// opa returns the path of the opa binary `go tool` built, building it once
// per test process (the first build takes a while).
func opa(t testing.TB) string {
	t.Helper()
	opaOnce.Do(func() {
		cmd := exec.Command("go", "tool", "-n", "opa")
		cmd.Env = goEnv
		out, err := cmd.Output()
		if err != nil {
			opaErr = err
			return
		}
		opaPath = strings.TrimSpace(string(out))
	})
	if opaErr != nil {
		t.Fatalf("go tool -n opa: %v", opaErr)
	}
	return opaPath
}

// Policies writes the repository's shipped policies (tests included, as a
// policy folder has them) and the extra files into a new folder under
// t.TempDir, and returns it.
func Policies(t testing.TB, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return err
		}
		b, err := fs.ReadFile(policies.FS, path)
		if err != nil {
			return err
		}
		return write(filepath.Join(dir, path), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range extra {
		if err := write(filepath.Join(dir, name), []byte(src)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func write(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Build runs `opa build -b dir -o out --revision rev` plus args (such as
// --signing-key), and returns out.
func Build(t testing.TB, dir, out, rev string, args ...string) string {
	t.Helper()
	cmd := exec.Command(opa(t), append([]string{"build", "-b", dir, "-o", out, "--revision", rev}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("opa build: %v\n%s", err, b)
	}
	return out
}

// Signed returns the opa build arguments that sign with the private key
// in keyFile, RS256.
func Signed(keyFile string) []string {
	return []string{"--signing-key", keyFile, "--signing-alg", "RS256"}
}

// KeyPair writes a fresh RSA key pair into dir as name.key (private,
// PKCS#1) and name.pub (PKIX public key), and returns both paths.
func KeyPair(t testing.TB, dir, name string) (private, public string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	private, public = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(private, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	return private, public
}

// Tamper rewrites the bundle at path with old replaced by new (of the same
// length) inside its uncompressed tar stream, and compresses it again: a
// valid archive whose content no longer matches its signature.
func Tamper(t testing.TB, path, old, new string) {
	t.Helper()
	if len(old) != len(new) {
		t.Fatal("Tamper keeps the length, so the tar headers stay valid")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tarball, err := io.ReadAll(zr)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(tarball, []byte(old)) {
		t.Fatalf("%q not in the bundle", old)
	}
	tarball = bytes.Replace(tarball, []byte(old), []byte(new), 1)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(tarball)
	zw.Close()
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FlipByte changes the byte in the middle of the file at path.
func FlipByte(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// GzipBomb is a bundle-shaped tar.gz of files data.json files of size
// zero bytes each: a few hundred KiB that inflate to files*size bytes.
func GzipBomb(t testing.TB, files, size int) []byte {
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

// PublicKeyPEM is a fresh RSA public key in PEM, for a verify_key that
// nothing was signed with.
func PublicKeyPEM(t testing.TB) []byte {
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

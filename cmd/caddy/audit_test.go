package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/auditlog"
)

// TestAuditVerifyCLI runs Caddy with the tokengate_audit writer rolling
// small files, makes calls, and verifies the rolled files and the current
// one in order with `caddy tokengate audit verify`, with the key `audit
// key` prints; then edits a line and sees verify name it and exit 1.
func TestAuditVerifyCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	p, port := startGateway(t, dir, up.Listener.Addr().String(), func(c string) string {
		return strings.Replace(c, "output file "+dir+"/audit.log", "output tokengate_audit "+dir+"/audit.log {\n\t\t\tcheckpoint_every 100ms\n\t\t\troll_size 4KiB\n\t\t}", 1)
	})
	cli := func(args ...string) (string, string, error) {
		return p.CLI(t, nil, append([]string{"tokengate"}, args...)...)
	}
	stdout, stderr, err := cli("issue", "--address", p.Admin, "--owner", "alice", "--purpose", "audit verify test",
		"--scope", "api:read", "--service", "api", "--ttl", "1h")
	if err != nil {
		t.Fatalf("issue: %v\n%s", err, stderr)
	}
	secret := strings.TrimSpace(stdout)
	for i := range 40 {
		if status, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/%d", port, i), secret); status != 200 {
			t.Fatalf("call %d: %d %s", i, status, body)
		}
	}
	vkey, stderr, err := cli("audit", "key")
	if err != nil || !strings.HasPrefix(vkey, auditlog.KeyName+"+") || strings.Count(vkey, "\n") != 1 {
		t.Fatalf("audit key: %q %v %s", vkey, err, stderr)
	}
	vkey = strings.TrimSpace(vkey)
	if fi, err := os.Stat(auditlog.KeyPath(filepath.Join(dir, "data", "caddy"))); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the generated key file: %v, want mode 0600", err)
	}

	path := filepath.Join(dir, "audit.log")
	files := append(auditlog.RolledFiles(path), path)
	if len(files) < 3 {
		t.Fatalf("%d files after 40 calls with roll_size 4KiB, want rolled ones", len(files))
	}
	args := append([]string{"audit", "verify", "--key", vkey}, files...)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, stderr, err = cli(args...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit verify of the rolled files: %v\n%s", err, stderr)
		}
		time.Sleep(100 * time.Millisecond) // until a checkpoint covers the last line
	}
	if !strings.Contains(stderr, "ok: ") {
		t.Fatalf("audit verify said %q", stderr)
	}
	// Without --key, the key in the data dir.
	if _, stderr, err := cli(append([]string{"audit", "verify"}, files...)...); err != nil {
		t.Fatalf("audit verify with the local key: %v\n%s", err, stderr)
	}

	// A proof of the middle file's second line (its first is the
	// continues line) against the checkpoints beside the current file
	// checks offline; the same proof with the line changed does not.
	middle := files[len(files)/2]
	proof, stderr, err := cli("audit", "prove", "--key", vkey, "--checkpoint", path+".checkpoints", middle, "2")
	if err != nil {
		t.Fatalf("audit prove: %v\n%s", err, stderr)
	}
	proofFile := filepath.Join(dir, "proof.json")
	if err := os.WriteFile(proofFile, []byte(proof), 0o600); err != nil {
		t.Fatal(err)
	}
	record, stderr, err := cli("audit", "check-proof", "--key", vkey, proofFile)
	if err != nil || !strings.Contains(stderr, "ok: ") || !strings.Contains(record, `"status":200`) {
		t.Fatalf("audit check-proof of a good proof: %v\n%s%s", err, record, stderr)
	}
	if err := os.WriteFile(proofFile, []byte(strings.Replace(proof, `\"status\":200`, `\"status\":201`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = cli("audit", "check-proof", "--key", vkey, proofFile)
	if code := exitCode(err); code != 1 || !strings.Contains(stderr, "is not the line the checkpoint signed") {
		t.Fatalf("audit check-proof of a changed line exited %d: %s", code, stderr)
	}

	// One flipped byte in the middle file.
	b, err := os.ReadFile(middle)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"status":200`, `"status":201`, 1)
	if err := os.WriteFile(middle, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = cli(args...)
	if err == nil || !strings.Contains(stderr, filepath.Base(middle)+" line 2: changed") {
		t.Fatalf("verify of an edited file: %v\n%s", err, stderr)
	}
	if code := exitCode(err); code != 1 {
		t.Fatalf("verify of an edited file exited %d, want 1", code)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bolt store is backed up while the node serves, through the admin
// endpoint, as an audited export; a node started on the copy serves the
// tokens as they were at the backup, revoked after it or not. A
// PostgreSQL node refuses with a clear 4xx pointing at pg_dump.
func TestBackupAndRestoreBolt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	p, port := startGateway(t, dir, up.Listener.Addr().String(), nil)
	local := []string{"--address", p.Admin}
	issue := func() (secret, id string) {
		t.Helper()
		stdout, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "issue", "--owner", "alice", "--purpose", "backup test",
			"--scope", "api:read", "--service", "api", "--ttl", "1h", "--json"}, local...)...)
		var issued struct {
			Secret string
			Token  struct{ ID string }
		}
		if err != nil || json.Unmarshal([]byte(stdout), &issued) != nil {
			t.Fatalf("issue: %v\n%s", err, stderr)
		}
		return issued.Secret, issued.Token.ID
	}
	kept, keptID := issue()
	revoked, revokedID := issue()
	gw := fmt.Sprintf("http://127.0.0.1:%d/api/x", port)
	if status, _ := get(t, gw, kept); status != http.StatusOK {
		t.Fatalf("call before the backup: %d", status)
	}

	backup := filepath.Join(t.TempDir(), "tokens.db.bak")
	_, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "backup", "--output", backup}, local...)...)
	if err != nil || !strings.Contains(stderr, "(2 tokens) to "+backup) {
		t.Fatalf("backup: %v\n%s", err, stderr)
	}
	if info, err := os.Stat(backup); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", info, err)
	}
	if _, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "revoke", revokedID, "--reason", "after the backup"}, local...)...); err != nil {
		t.Fatalf("revoke: %v %s", err, stderr)
	}
	if status, _ := get(t, gw, revoked); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", status)
	}
	auditLog, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	backups := 0
	for line := range strings.Lines(string(auditLog)) {
		var l struct{ Msg, Actor, Outcome string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "store.backup" {
			backups++
			if l.Actor != "local-operator" || l.Outcome != "success" {
				t.Errorf("store.backup line: %s", line)
			}
		}
	}
	if backups != 1 {
		t.Fatalf("%d store.backup audit lines, want 1:\n%s", backups, auditLog)
	}

	// Restore: stop the node, put the copy in place of the store, start.
	p.Kill()
	if err := os.Rename(backup, filepath.Join(dir, "tokens.db")); err != nil {
		t.Fatal(err)
	}
	_, port = startGateway(t, dir, up.Listener.Addr().String(), nil)
	gw = fmt.Sprintf("http://127.0.0.1:%d/api/x", port)
	for name, secret := range map[string]string{keptID: kept, revokedID: revoked} {
		if status, body := get(t, gw, secret); status != http.StatusOK {
			t.Errorf("token %s after the restore: %d %s", name, status, body)
		}
	}
}

func TestBackupOfPostgresPointsAtPgDump(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	_, stderr, err := c.a.tryTokengate(t, "backup", "--output", filepath.Join(t.TempDir(), "x.db"))
	if exitCode(err) != 1 || !strings.Contains(stderr, "backup_unsupported") || !strings.Contains(stderr, "pg_dump") {
		t.Errorf("backup of a PostgreSQL node: %v\n%s", err, stderr)
	}
}

// The break-glass commands through the real binary: start names the code
// file (0600, in the node's data folder) without printing the code, and
// confirm reads it from --code-file; before the delay the node refuses.
func TestBreakGlassCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	p, _ := startGateway(t, dir, up.Listener.Addr().String(), nil)
	local := []string{"--address", p.Admin}
	if _, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "bootstrap", "--requester", "alice", "--approver", "bob"}, local...)...); err != nil {
		t.Fatalf("bootstrap: %v %s", err, stderr)
	}
	stdout, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "break-glass", "start", "--requester", "carol", "--approver", "dave",
		"--reason", "both secrets lost"}, local...)...)
	if err != nil || stdout != "" {
		t.Fatalf("break-glass start: %v\nstdout %s\nstderr %s", err, stdout, stderr)
	}
	_, rest, _ := strings.Cut(stderr, "--code-file ")
	codeFile := strings.TrimSpace(rest)
	info, err := os.Stat(codeFile)
	if err != nil || info.Mode().Perm() != 0o600 || !strings.HasPrefix(codeFile, dir) {
		t.Fatalf("code file %q: %v %v\n%s", codeFile, info, err, stderr)
	}
	code, _ := os.ReadFile(codeFile)
	if strings.Contains(stderr, strings.TrimSpace(string(code))) {
		t.Fatalf("start printed the code:\n%s", stderr)
	}
	id := strings.Fields(stderr)[1]
	_, stderr, err = p.CLI(t, nil, append([]string{"tokengate", "break-glass", "confirm", id, "--code-file", codeFile}, local...)...)
	if exitCode(err) != 1 || !strings.Contains(stderr, "break_glass_too_early") {
		t.Errorf("confirm at once: %v\n%s", err, stderr)
	}
}

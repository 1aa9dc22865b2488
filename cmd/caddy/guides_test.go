package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/testutil/pgtest"
)

// guideBlock returns the ```sh block that follows <!-- guide: name --> in
// the guide file, so the test runs the commands exactly as written.
func guideBlock(t *testing.T, guide, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(caddyproc.RepoRoot(t), "docs", guide))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "<!-- guide: "+name+" -->\n```sh\n")
	block, _, closed := strings.Cut(rest, "```\n")
	if !ok || !closed || strings.TrimSpace(block) == "" {
		t.Fatalf("docs/%s has no sh block marked %q", guide, name)
	}
	return block
}

// runGuide runs a guide's block with bash (-euo pipefail), the built caddy
// first on PATH, Caddy's admin endpoint in CADDY_ADMIN, and vars.
func runGuide(t *testing.T, p *caddyproc.Process, block string, vars ...string) {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = p.Dir
	cmd.Env = append(p.Env(), append([]string{
		"PATH=" + filepath.Dir(caddyproc.Binary(t)) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"CADDY_ADMIN=" + p.Admin,
	}, vars...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("guide block\n%s\nfailed: %v\n%s", block, err, out)
	}
}

// TestGuides follows docs/backup-restore.md as an operator would, with
// real Caddy, bbolt and PostgreSQL: back up, lose the store, restore,
// and the tokens of the backup serve again. .ci/guides runs it once in
// CI; go test ./... skips it.
//
// Not parallel: run on its own by .ci/guides.
func TestGuides(t *testing.T) {
	if os.Getenv("TOKENGATE_GUIDES") != "1" {
		t.Skip("run by .ci/guides (TOKENGATE_GUIDES=1)")
	}
	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		up := startUpstream(t)
		p, _ := startGateway(t, dir, up.Listener.Addr().String(), nil)
		secret := issueWith(t, p, "api")
		backup := filepath.Join(t.TempDir(), "tokens.db.bak")
		db := filepath.Join(dir, "tokens.db")

		runGuide(t, p, guideBlock(t, "backup-restore.md", "bolt-backup"), "BACKUP="+backup)
		p.Kill()
		if err := os.Remove(db); err != nil {
			t.Fatal(err)
		}
		runGuide(t, p, guideBlock(t, "backup-restore.md", "bolt-restore"), "BACKUP="+backup, "TOKENGATE_DB="+db)
		_, port := startGateway(t, dir, up.Listener.Addr().String(), nil)
		if status, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/x", port), secret); status != http.StatusOK {
			t.Errorf("the backed-up token after the restore: %d %s", status, body)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := freshDatabase(t)
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
		t.Cleanup(upstream.Close)
		n := startNode(t, "guide", dsn, upstream.URL)
		tok := n.issue(t, "alice")
		backup := filepath.Join(t.TempDir(), "tokens.pgdump")

		runGuide(t, n.Process, guideBlock(t, "backup-restore.md", "postgres-backup"), "BACKUP="+backup, "DATABASE_URL="+dsn)
		n.Kill()
		emptyDatabase(t, dsn)
		runGuide(t, n.Process, guideBlock(t, "backup-restore.md", "postgres-restore"), "BACKUP="+backup, "DATABASE_URL="+dsn)
		n = startNode(t, "guide-restored", dsn, upstream.URL)
		n.mustCall(t, tok.Secret, http.StatusOK)
	})
}

// issueWith issues a read token for service through p's admin endpoint
// and returns its secret.
func issueWith(t *testing.T, p *caddyproc.Process, service string) string {
	t.Helper()
	stdout, stderr, err := p.CLI(t, nil, "tokengate", "issue", "--address", p.Admin, "--owner", "alice", "--purpose", "guide",
		"--scope", service+":read", "--service", service, "--ttl", "1h")
	if err != nil {
		t.Fatalf("issue: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(stdout)
}

// freshDatabase creates a database of its own for the test, as the guide
// assumes one per installation, and drops it when the test ends.
func freshDatabase(t *testing.T) string {
	t.Helper()
	u, conn := pgtest.Connect(t, " (its role must be allowed to create databases)")
	name := "tg_guide_" + strings.ToLower(rand.Text()[:12])
	if _, err := conn.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	db := *u
	db.Path = "/" + name
	return db.String()
}

// emptyDatabase loses everything in dsn's database, as a disk loss would.
func emptyDatabase(t *testing.T, dsn string) {
	t.Helper()
	out, err := exec.Command("psql", "-v", "ON_ERROR_STOP=1", "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public", dsn).CombinedOutput()
	if err != nil {
		t.Fatalf("emptying the database: %v\n%s", err, out)
	}
}

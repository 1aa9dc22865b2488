package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/token"
)

// pepperCaddyfile is a gateway whose peppers are files in its folder, as
// the pepper rotation guide keeps them. store is the store option;
// previousPepper adds the previous_pepper line.
func pepperCaddyfile(admin, port int, dir, store string, previousPepper bool) string {
	previous := ""
	if previousPepper {
		previous = "previous_pepper {file." + dir + "/previous-pepper}"
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	tokengate {
		%s
		pepper {file.%s/pepper}
		%s
	}
	log default {
		output file %s/caddy.log
		format json
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	route /svc/* {
		tokengate svc
		respond "ok" 200
	}
}
`, admin, store, dir, previous, dir, port)
}

// TestPepperRotationGuide follows the "Rotating the pepper" section of
// docs/backup-restore.md, its shell blocks as written, against a real
// Caddy on bolt and on PostgreSQL: a token issued under pepper A and used
// while the node runs with pepper B and previous_pepper A keeps working
// once previous_pepper is removed; one never used in between becomes
// unknown, as does a secret the store never had.
func TestPepperRotationGuide(t *testing.T) {
	t.Parallel()
	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		testPepperRotation(t, dir, "store bolt "+dir+"/tokens.db")
	})
	t.Run("postgres", func(t *testing.T) {
		testPepperRotation(t, t.TempDir(), `store postgres "`+freshDatabase(t)+`"`)
	})
}

func testPepperRotation(t *testing.T, dir, storeLine string) {
	const pepperA = "pepper-A-7d1e-kept-in-a-file"
	if err := os.WriteFile(filepath.Join(dir, "pepper"), []byte(pepperA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin, port := caddyproc.FreePort(t), caddyproc.FreePort(t)
	caddyfile := filepath.Join(dir, "Caddyfile")
	p := caddyproc.Start(t, dir, fmt.Sprintf("127.0.0.1:%d", admin), pepperCaddyfile(admin, port, dir, storeLine, false))
	n := &node{Process: p, name: "gateway", url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	eventually(t, 10*time.Second, "the gateway serves HTTP", func() (bool, string) {
		status, reason, _ := n.call(t, "")
		return status == http.StatusUnauthorized && reason == "token_missing", fmt.Sprintf("%d %s", status, reason)
	})
	used := n.issue(t, "alice")
	idle := n.issue(t, "bob")
	n.mustCall(t, used.Secret, http.StatusOK)
	vars := []string{"PEPPER_DIR=" + dir, "CADDYFILE=" + caddyfile}

	// Steps 1 and 2: pepper B, previous_pepper A.
	runGuide(t, p, guideBlock(t, "backup-restore.md", "pepper-new"), vars...)
	if b, err := os.ReadFile(filepath.Join(dir, "previous-pepper")); err != nil || strings.TrimSpace(string(b)) != pepperA {
		t.Fatalf("after the guide's first step previous-pepper holds %q (%v), want pepper A", b, err)
	}
	writeCaddyfile(t, caddyfile, pepperCaddyfile(admin, port, dir, storeLine, true))
	runGuide(t, p, guideBlock(t, "backup-restore.md", "pepper-reload"), vars...)
	n.mustCall(t, used.Secret, http.StatusOK)
	stranger := token.NewSecret()
	if status, reason, _ := n.call(t, stranger); status != http.StatusUnauthorized || reason != "token_unknown" {
		t.Fatalf("a secret the store never had, under both peppers: %d %s, want 401 token_unknown", status, reason)
	}
	fresh := n.issue(t, "carol")
	n.mustCall(t, fresh.Secret, http.StatusOK)

	// Step 4: pepper B alone.
	writeCaddyfile(t, caddyfile, pepperCaddyfile(admin, port, dir, storeLine, false))
	runGuide(t, p, guideBlock(t, "backup-restore.md", "pepper-reload"), vars...)
	runGuide(t, p, guideBlock(t, "backup-restore.md", "pepper-forget"), vars...)
	if _, err := os.Stat(filepath.Join(dir, "previous-pepper")); !os.IsNotExist(err) {
		t.Fatalf("the previous pepper's file is still there: %v", err)
	}
	n.mustCall(t, used.Secret, http.StatusOK)
	n.mustCall(t, fresh.Secret, http.StatusOK)
	if status, reason, _ := n.call(t, idle.Secret); status != http.StatusUnauthorized || reason != "token_unknown" {
		t.Fatalf("a token not used while previous_pepper was set, after it was removed: %d %s, want 401 token_unknown", status, reason)
	}
	if status, reason, _ := n.call(t, stranger); status != http.StatusUnauthorized || reason != "token_unknown" {
		t.Fatalf("a secret the store never had: %d %s, want 401 token_unknown", status, reason)
	}

	log, err := os.ReadFile(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"token re-keyed under the current pepper"`) || !strings.Contains(string(log), used.Token.ID) {
		t.Errorf("no log line says %s was re-keyed", used.Token.ID)
	}
	newPepper, _ := os.ReadFile(filepath.Join(dir, "pepper"))
	for _, secret := range []string{pepperA, strings.TrimSpace(string(newPepper)), used.Secret} {
		if strings.Contains(string(log), secret) || strings.Contains(p.Output(), secret) {
			t.Errorf("a pepper or secret appears in Caddy's log")
		}
	}
}

func writeCaddyfile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

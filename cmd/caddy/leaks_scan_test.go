package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
)

// gitleaksModule is the gitleaks the rule in dist/gitleaks is tested with,
// built from the Go module proxy by `go run` (cached in the go build
// cache, never in the repository).
const gitleaksModule = "github.com/zricethezav/gitleaks/v8@v8.30.1"

// gitIn runs git in dir with a fixed identity and no user config.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// A secret planted in a repository is found by the real gitleaks with
// dist/gitleaks/tokengate.toml; its JSON report, POSTed as it is, revokes
// the token. `caddy tokengate leaks scan` finds a second secret that is
// only in the history, prints where and never what, and with --api says
// which token it is; --revoke needs a caller who may report, and revokes.
func TestGitleaksAndScanEndToEnd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	db := newTestDB(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	t.Cleanup(upstream.Close)
	_, keys := newGitHubKey(t, t.TempDir())
	n := startLeakNode(t, "node", db.dsn, upstream.URL, keys)
	local := []string{"--address", n.Admin}
	onDisk := n.issue(t, "svc-a")
	inHistory := n.issue(t, "svc-b")

	repo := t.TempDir()
	gitIn(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "deploy.env"), []byte("REGION=eu\nTOKENGATE_TOKEN="+onDisk.Secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(repo, "old.env"), []byte("X=1\nTOKEN="+inHistory.Secret+"\n"), 0o600)
	gitIn(t, repo, "add", ".")
	gitIn(t, repo, "commit", "-q", "-m", "config")
	planted := gitIn(t, repo, "rev-parse", "HEAD")
	os.Remove(filepath.Join(repo, "old.env"))
	gitIn(t, repo, "add", "-A")
	gitIn(t, repo, "commit", "-q", "-m", "drop old config")

	// caddy tokengate leaks scan, offline: both found, exit 3, no secret
	// printed.
	stdout, stderr, err := n.CLI(t, nil, "tokengate", "leaks", "scan", repo)
	if exitStatus(err) != 3 {
		t.Fatalf("leaks scan: exit %d, want 3\n%s%s", exitStatus(err), stdout, stderr)
	}
	for _, want := range []string{filepath.Join(repo, "deploy.env") + ":2", filepath.Join(repo, "old.env") + ":2 (commit " + planted + ")"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("leaks scan output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout+stderr, onDisk.Secret) || strings.Contains(stdout+stderr, inHistory.Secret) {
		t.Fatal("leaks scan printed a secret")
	}
	clean := t.TempDir()
	os.WriteFile(filepath.Join(clean, "x.txt"), []byte("tg_ is our prefix; tg_"+strings.Repeat("a", 36)+" fails the checksum\n"), 0o600)
	if _, stderr, err := n.CLI(t, nil, "tokengate", "leaks", "scan", clean); err != nil {
		t.Fatalf("leaks scan of a clean folder: %v %s", err, stderr)
	}

	// With --api and a credential that may read: the token ids and
	// states, nothing revoked. --revoke with it: refused, nothing revoked.
	out, _, err := n.CLI(t, nil, append([]string{"tokengate", "bootstrap", "--requester", "alice", "--approver", "bob"}, local...)...)
	if err != nil {
		t.Fatal(err)
	}
	asAlice := []string{"TOKENGATE_TOKEN=" + strings.Fields(out)[0]}
	stdout, stderr, err = n.CLI(t, asAlice, "tokengate", "leaks", "scan", repo, "--api", n.mgmt)
	if exitStatus(err) != 3 || !strings.Contains(stdout, "(commit "+planted+") "+inHistory.Token.ID+" active") {
		t.Fatalf("leaks scan --api: exit %d\n%s%s", exitStatus(err), stdout, stderr)
	}
	if _, stderr, err = n.CLI(t, asAlice, "tokengate", "leaks", "scan", repo, "--api", n.mgmt, "--revoke"); exitStatus(err) != 1 || !strings.Contains(stderr, "scope_missing") {
		t.Fatalf("leaks scan --revoke without tokens:revoke: exit %d, %s", exitStatus(err), stderr)
	}
	n.mustCall(t, inHistory.Secret, http.StatusOK)

	// A management token with tokens:revoke, through the two-person flow:
	// --revoke reports both; the one only in history is revoked here.
	asBob := []string{"TOKENGATE_TOKEN=" + strings.Fields(out)[1]}
	_, stderr, err = n.CLI(t, asAlice, "tokengate", "request", "--api", n.mgmt, "--owner", "alice", "--purpose", "report leaks",
		"--scope", "tokens:revoke", "--service", "tokengate-admin", "--ttl", "1h")
	reqID := between(stderr, "request ", " is pending")
	if err != nil || reqID == "" {
		t.Fatalf("request: %v %s", err, stderr)
	}
	if _, stderr, err := n.CLI(t, asBob, "tokengate", "approve", "--api", n.mgmt, reqID, "--reason", "leak reporting"); err != nil {
		t.Fatalf("approve: %v %s", err, stderr)
	}
	reporter, stderr, err := n.CLI(t, asAlice, "tokengate", "claim", "--api", n.mgmt, reqID)
	if err != nil {
		t.Fatalf("claim: %v %s", err, stderr)
	}
	asReporter := []string{"TOKENGATE_TOKEN=" + strings.TrimSpace(reporter)}
	stdout, stderr, err = n.CLI(t, asReporter, "tokengate", "leaks", "scan", repo, "--no-history", "--api", n.mgmt, "--revoke")
	if exitStatus(err) != 3 || !strings.Contains(stdout, onDisk.Token.ID+" exposed") {
		t.Fatalf("leaks scan --revoke of the files: exit %d\n%s%s", exitStatus(err), stdout, stderr)
	}
	n.mustCall(t, onDisk.Secret, http.StatusUnauthorized)
	n.mustCall(t, inHistory.Secret, http.StatusOK)

	// The real gitleaks with our rule.
	report := filepath.Join(t.TempDir(), "gitleaks.json")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	gl := exec.CommandContext(ctx, "go", "run", gitleaksModule, "git", "--no-banner", "--exit-code", "0",
		"--config", filepath.Join(caddyproc.RepoRoot(t), "dist", "gitleaks", "tokengate.toml"),
		"--report-format", "json", "--report-path", report, repo)
	if glOut, err := gl.CombinedOutput(); err != nil {
		if os.Getenv("CI") != "true" && bytes.Contains(glOut, []byte("proxy.golang.org")) {
			t.Skipf("gitleaks could not be fetched from the module proxy: %s", glOut)
		}
		t.Fatalf("gitleaks: %v\n%s", err, glOut)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var findings []struct {
		RuleID, Secret, File, Commit string
		StartLine                    int
	}
	if err := json.Unmarshal(data, &findings); err != nil {
		t.Fatalf("gitleaks report: %v\n%s", err, data)
	}
	got := map[string]string{}
	for _, f := range findings {
		if f.RuleID == "tokengate-secret" {
			got[f.Secret] = f.File
		}
	}
	if got[onDisk.Secret] != "deploy.env" || got[inHistory.Secret] != "old.env" || len(got) != 2 {
		t.Fatalf("gitleaks found %d tokengate secrets in %v, want deploy.env and old.env", len(got), got)
	}

	// The report as it is, to the local operator's endpoint.
	client, base := caddyproc.AdminClient(n.Admin)
	req, _ := http.NewRequest(http.MethodPost, base+"/tokengate/leaks", bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"exposed":1`)) || !bytes.Contains(answer, []byte(`"already_exposed":1`)) {
		t.Fatalf("gitleaks report: %d %s", resp.StatusCode, answer)
	}
	for _, tok := range []issued{onDisk, inHistory} {
		if v := n.show(t, tok.Token.ID); v.State != "exposed" {
			t.Fatalf("%s is %s after the gitleaks report, want exposed", tok.Token.ID, v.State)
		}
		n.mustCall(t, tok.Secret, http.StatusUnauthorized)
	}
}

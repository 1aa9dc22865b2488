package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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

// These tests run the built binary the way an operator does: `caddy run`
// with a Caddyfile, and `caddy tokengate ...` in a shell.

func gatewayConfig(adminPort, port int, upstream, dir string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	tokengate {
		store bolt %[4]s/tokens.db
	}
	log audit {
		include tokengate.audit
		output file %[4]s/audit.log
		format json
	}
}
http://127.0.0.1:%[2]d {
	bind 127.0.0.1
	route /api/* {
		tokengate api
		reverse_proxy %[3]s
	}
}
http://127.0.0.1:%[5]d {
	bind 127.0.0.1
	tokengate_admin
}
`, adminPort, port, upstream, dir, port+1)
}

func startUpstream(t *testing.T) *httptest.Server {
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the credential reached the upstream")
		}
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Tokengate-Owner"))
	}))
	t.Cleanup(u.Close)
	return u
}

func get(t *testing.T, url, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// freePorts returns an admin port and a gateway port whose successor (the
// management API) is free too.
func freePorts(t *testing.T) (admin, gateway int) {
	for {
		admin, gateway = caddyproc.FreePort(t), caddyproc.FreePort(t)
		if l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", fmt.Sprintf("127.0.0.1:%d", gateway+1)); err == nil {
			l.Close()
			return admin, gateway
		}
	}
}

// startGateway starts Caddy with gatewayConfig on ports chosen free (new
// ones if another process took one first), edited by edit when not nil,
// and returns it with its gateway port (the management API is on the next).
func startGateway(t *testing.T, dir, upstream string, edit func(string) string) (*caddyproc.Process, int) {
	t.Helper()
	var port int
	p := caddyproc.StartOnFreePorts(t, dir, func() (string, string) {
		var adminPort int
		adminPort, port = freePorts(t)
		cfg := gatewayConfig(adminPort, port, upstream, dir)
		if edit != nil {
			cfg = edit(cfg)
		}
		return fmt.Sprintf("127.0.0.1:%d", adminPort), cfg
	})
	return p, port
}

// TestIssuedTokenSurvivesKill9 issues a token with the CLI, kills Caddy
// with SIGKILL (no shutdown, no flush), starts it again on the same bolt
// file and uses the token.
func TestIssuedTokenSurvivesKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	var cfg string
	p, port := startGateway(t, dir, up.Listener.Addr().String(), func(c string) string { cfg = c; return c })

	stdout, stderr, err := p.CLI(t, nil, "tokengate", "issue", "--address", p.Admin,
		"--owner", "alice", "--purpose", "crash test", "--scope", "api:read", "--service", "api", "--ttl", "30m")
	if err != nil {
		t.Fatalf("issue: %v\n%s", err, stderr)
	}
	secret := strings.TrimSpace(stdout)
	if strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(secret, "tg_") {
		t.Fatalf("stdout must be the secret alone on one line, got %q", stdout)
	}
	if strings.Contains(stderr, secret) || !strings.Contains(stderr, "tok_") {
		t.Fatalf("stderr %q", stderr)
	}

	p.Kill() // acknowledged above, so it must be on disk now
	caddyproc.Start(t, dir, p.Admin, cfg)
	if status, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/x", port), secret); status != 200 || body != "hello alice" {
		t.Fatalf("after kill -9 and restart: %d %s", status, body)
	}
}

// TestCLILifecycle drives list, show, rotate, revoke, report, check and
// the remote two-person flow through the binary.
func TestCLILifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	p, port := startGateway(t, dir, up.Listener.Addr().String(), nil)
	gw := fmt.Sprintf("http://127.0.0.1:%d/api/", port)
	api := fmt.Sprintf("http://127.0.0.1:%d", port+1)
	cli := func(env []string, args ...string) (string, string) {
		t.Helper()
		stdout, stderr, err := p.CLI(t, env, append([]string{"tokengate"}, args...)...)
		if err != nil {
			t.Fatalf("caddy tokengate %v: %v\nstdout %s\nstderr %s", args, err, stdout, stderr)
		}
		return stdout, stderr
	}
	local := []string{"--address", p.Admin}

	secret, _ := cli(nil, append([]string{"issue", "--owner", "alice", "--purpose", "cli test", "--scope", "api:read", "--service", "api", "--ttl", "1h", "--json"}, local...)...)
	var issued struct {
		Secret string
		Token  struct{ ID string }
	}
	if err := json.Unmarshal([]byte(secret), &issued); err != nil || issued.Token.ID == "" {
		t.Fatalf("issue --json: %q", secret)
	}
	id := issued.Token.ID

	out, _ := cli(nil, append([]string{"list", "--owner", "alice"}, local...)...)
	if !strings.Contains(out, id) || strings.Contains(out, issued.Secret) || !strings.Contains(out, "active") {
		t.Fatalf("list: %s", out)
	}
	out, _ = cli(nil, append([]string{"show", id}, local...)...)
	if !strings.Contains(out, `"purpose": "cli test"`) || strings.Contains(out, "tg_") {
		t.Fatalf("show: %s", out)
	}
	out, _ = cli(nil, append([]string{"check", "--token-id", id, "--service", "api", "--method", "GET"}, local...)...)
	if !strings.HasPrefix(out, "allow") {
		t.Fatalf("check: %s", out)
	}

	// Trying a policy change before rollout: a folder whose gateway policy
	// refuses everything.
	policyDir := filepath.Join(dir, "candidate")
	_ = os.MkdirAll(policyDir, 0o755)
	_ = os.WriteFile(filepath.Join(policyDir, "gateway.rego"), []byte("package tokengate.gateway\nreasons contains \"maintenance\"\n"), 0o644)
	stdout, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "check", "--token-id", id, "--service", "api", "--policy", policyDir}, local...)...)
	if exitCode(err) != 3 || !strings.HasPrefix(stdout, "deny maintenance") || strings.Contains(stderr, "Error") {
		t.Fatalf("check --policy: err %v (want exit status 3), out %s, stderr %s", err, stdout, stderr)
	}
	// The candidate sees the input the gateway builds from the stored
	// token, not a copy rebuilt from its API view.
	_ = os.WriteFile(filepath.Join(policyDir, "gateway.rego"), []byte("package tokengate.gateway\nreasons contains concat(\"-\", [input.token.owner, input.token.purpose, input.route.service, input.request.path])\n"), 0o644)
	if stdout, _, err := p.CLI(t, nil, append([]string{"tokengate", "check", "--token-id", id, "--service", "api", "--path", "/x", "--policy", policyDir}, local...)...); exitCode(err) != 3 || !strings.HasPrefix(stdout, "deny alice-cli test-api-/x") {
		t.Fatalf("check --policy reading the input: err %v, out %s", err, stdout)
	}
	allowAll := filepath.Join(dir, "allow-all")
	_ = os.MkdirAll(allowAll, 0o755)
	_ = os.WriteFile(filepath.Join(allowAll, "gateway.rego"), []byte("package tokengate.gateway\nreasons := set()\n"), 0o644)
	if out, _ := cli(nil, append([]string{"check", "--token-id", id, "--service", "api", "--policy", allowAll}, local...)...); !strings.HasPrefix(out, "allow") {
		t.Fatalf("check --policy allow-all: %s", out)
	}

	newSecret, _ := cli(nil, append([]string{"rotate", id, "--grace", "1m"}, local...)...)
	newSecret = strings.TrimSpace(newSecret)
	for _, s := range []string{issued.Secret, newSecret} {
		if status, _ := get(t, gw+"rot", s); status != 200 {
			t.Fatalf("within grace: %d", status)
		}
	}
	_, stderr = cli(nil, append([]string{"revoke", id, "--reason", "cli test done"}, local...)...)
	if !strings.Contains(stderr, "revoked") {
		t.Fatalf("revoke: %s", stderr)
	}
	// No policy folder brings a revoked token back: liveness is decided
	// before any policy runs.
	if stdout, _, err := p.CLI(t, nil, append([]string{"tokengate", "check", "--token-id", id, "--service", "api", "--policy", allowAll}, local...)...); exitCode(err) != 3 || !strings.HasPrefix(stdout, "deny token_revoked") {
		t.Fatalf("check --policy of a revoked token: err %v, out %s", err, stdout)
	}
	if status, body := get(t, gw+"rev", issued.Secret); status != 401 || !strings.Contains(body, "token_revoked") {
		t.Fatalf("after revoke: %d %s", status, body)
	}

	// The two-person flow from the shell. Secrets travel in the
	// environment, never in argv.
	out, _ = cli(nil, append([]string{"bootstrap", "--requester", "alice", "--approver", "bob"}, local...)...)
	lines := strings.Fields(out)
	if len(lines) != 2 {
		t.Fatalf("bootstrap stdout %q", out)
	}
	asAlice := []string{"TOKENGATE_API=" + api, "TOKENGATE_TOKEN=" + lines[0]}
	asBob := []string{"TOKENGATE_API=" + api, "TOKENGATE_TOKEN=" + lines[1]}
	_, stderr = cli(asAlice, "request", "--owner", "etl", "--purpose", "load", "--scope", "api:write", "--service", "api", "--ttl", "2h")
	reqID := between(stderr, "request ", " is pending")
	if reqID == "" {
		t.Fatalf("request: %s", stderr)
	}
	out, _ = cli(asBob, "list", "--requests", "--state", "pending")
	if !strings.Contains(out, reqID) {
		t.Fatalf("pending requests: %s", out)
	}
	out, _ = cli(asBob, "approve", reqID, "--reason", "ticket 7")
	if strings.Contains(out, "tg_") {
		t.Fatal("the approver got a secret")
	}
	claimed, _ := cli(asAlice, "claim", reqID)
	if status, _ := get(t, gw+"etl", strings.TrimSpace(claimed)); status != 200 {
		t.Fatalf("claimed token: %d", status)
	}
	if _, stderr, err := p.CLI(t, asBob, "tokengate", "claim", reqID); err == nil || !strings.Contains(stderr, "not_requester") {
		t.Fatalf("approver claiming: %v %s", err, stderr)
	}
	if _, stderr, err := p.CLI(t, []string{"TOKENGATE_API=" + api}, "tokengate", "list"); err == nil || !strings.Contains(stderr, "TOKENGATE_TOKEN") {
		t.Fatalf("remote call without a token: %v %s", err, stderr)
	}
	out, _ = cli(asAlice, "report")
	if !strings.Contains(out, "never used") || !strings.Contains(out, "write scope without CIDR binding: 1") {
		t.Fatalf("report: %s", out)
	}

	out, _ = cli(nil, "policy-test", filepath.Join(caddyproc.RepoRoot(t), "policies"))
	if !strings.Contains(out, " 0 failed") {
		t.Fatalf("policy-test: %s", out)
	}

	// Audit lines never carry a secret.
	audit, _ := os.ReadFile(filepath.Join(dir, "audit.log"))
	for _, s := range append([]string{issued.Secret, newSecret, strings.TrimSpace(claimed)}, lines...) {
		if strings.Contains(string(audit), s) {
			t.Fatal("a secret is in the audit log")
		}
	}
	if !strings.Contains(string(audit), `"msg":"token.claimed"`) {
		t.Fatal("audit log lacks the management lines")
	}
}

// exitCode is the exit status of a finished CLI call, -1 when it did not
// run to an exit.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return -1
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	rest := s[i+len(start):]
	j := strings.Index(rest, end)
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// TestExampleCaddyfileRunsAsIs runs Caddyfile.example from a fresh folder
// with a fresh HOME, like the README's first command does, and walks the
// quickstart: issue, call /demo/, read the audit line, revoke, see the
// deny. Only its ports are moved to free ones, through the environment
// variables the file reads them from: Caddy listens with SO_REUSEPORT, so
// on a port another process holds the test would not fail but share that
// process's traffic.
func TestExampleCaddyfileRunsAsIs(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(caddyproc.RepoRoot(t), "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	free := func() string { return fmt.Sprint(caddyproc.FreePort(t)) }
	var environ []string
	ports := map[string]string{
		"TOKENGATE_ADMIN_PORT": free(), "TOKENGATE_GATEWAY_PORT": free(),
		"TOKENGATE_MANAGEMENT_PORT": free(), "TOKENGATE_UPSTREAM_PORT": free(),
	}
	for name, port := range ports {
		if !strings.Contains(string(src), "{$"+name+":") {
			t.Fatalf("Caddyfile.example no longer reads {$%s:...}; update this test", name)
		}
		environ = append(environ, name+"="+port)
	}
	admin := "localhost:" + ports["TOKENGATE_ADMIN_PORT"]
	gateway := "127.0.0.1:" + ports["TOKENGATE_GATEWAY_PORT"]
	cfg := string(src)
	dir := t.TempDir()
	p := caddyproc.Command{Env: environ}.Start(t, dir, admin, cfg)

	secret, stderr, err := p.CLI(t, nil, "tokengate", "issue", "--address", admin, "--owner", "alice", "--purpose", "try the demo",
		"--scope", "demo:read", "--service", "demo", "--ttl", "30m")
	if err != nil {
		t.Fatalf("issue: %v %s", err, stderr)
	}
	secret = strings.TrimSpace(secret)
	status, body := get(t, "http://"+gateway+"/demo/hello", secret)
	if status != 200 {
		t.Fatalf("demo call: %d %s", status, body)
	}
	var echo struct {
		Upstream string
		Headers  map[string][]string
	}
	if err := json.Unmarshal([]byte(body), &echo); err != nil || echo.Upstream != "demo" {
		t.Fatalf("demo upstream answer %s", body)
	}
	if _, ok := echo.Headers["Authorization"]; ok || echo.Headers["X-Tokengate-Owner"][0] != "alice" {
		t.Fatalf("upstream saw %v", echo.Headers)
	}
	id := between(stderr, "issued ", " for")
	if _, _, err := p.CLI(t, nil, "tokengate", "revoke", "--address", admin, id, "--reason", "quickstart"); err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, "http://"+gateway+"/demo/hello", secret); status != 401 || !strings.Contains(body, "token_revoked") {
		t.Fatalf("after revoke: %d %s", status, body)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		audit, _ := os.ReadFile(filepath.Join(dir, "audit.log"))
		if strings.Contains(string(audit), `"decision":"deny","reasons":["token_revoked"]`) {
			if strings.Contains(string(audit), secret) {
				t.Fatal("secret in the audit log")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit.log: %s", audit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The default store lives in Caddy's data dir, under the fresh HOME.
	if _, err := os.Stat(filepath.Join(dir, "data", "caddy", "tokengate", "tokengate.db")); err != nil {
		t.Fatalf("default bolt store not in the data dir: %v", err)
	}
}

// TestOperatorPaperCuts runs what an operator trips over beside a running
// node: `caddy validate` on its config, Caddy-style durations (1d) for
// --ttl and --grace, `check --json` on a deny, token ids in the report's
// text, and the error when no Caddy answers at --address.
func TestOperatorPaperCuts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	p, _ := startGateway(t, dir, up.Listener.Addr().String(), nil)
	local := []string{"--address", p.Admin}

	// The running node holds the bolt file's exclusive lock; validation
	// provisions the same config and must not wait for it.
	start := time.Now()
	stdout, stderr, err := p.CLI(t, nil, "validate", "--config", "Caddyfile", "--adapter", "caddyfile")
	if took := time.Since(start); err != nil || !strings.Contains(stdout+stderr, "Valid configuration") || took > 3*time.Second {
		t.Fatalf("validate beside a running node: err %v after %s\nstdout %s\nstderr %s", err, took, stdout, stderr)
	}
	// The node still serves its store after the validation.
	issue := func(ttl string) (string, string, error) {
		return p.CLI(t, nil, append([]string{"tokengate", "issue", "--owner", "alice", "--purpose", "ops test",
			"--scope", "api:read", "--service", "api", "--ttl", ttl, "--json"}, local...)...)
	}
	// Caddy's duration syntax, as the Caddyfile's max_ttl takes it. The
	// bootstrap tokens may live a day; a local operator's issue may not,
	// and the admin policy (not the parser) says so.
	if _, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "bootstrap", "--requester", "alice", "--approver", "bob", "--ttl", "1d"}, local...)...); err != nil {
		t.Fatalf("bootstrap --ttl 1d: %v %s", err, stderr)
	}
	if _, stderr, err := issue("1d"); exitCode(err) != 1 || !strings.Contains(stderr, "local_operator_bounds") {
		t.Fatalf("issue --ttl 1d by the local operator: %v %s", err, stderr)
	}
	stdout, stderr, err = issue("0.5h")
	var issued struct {
		Secret string
		Token  struct{ ID, ExpiresAt string } `json:"token"`
	}
	if err != nil || json.Unmarshal([]byte(stdout), &issued) != nil || issued.Token.ID == "" {
		t.Fatalf("issue --ttl 0.5h: %v\n%s\n%s", err, stdout, stderr)
	}
	if _, stderr, err := issue("1y"); exitCode(err) != 1 || !strings.Contains(stderr, "ttl_invalid") {
		t.Fatalf("issue --ttl 1y: %v %s", err, stderr)
	}
	if _, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "rotate", issued.Token.ID, "--grace", "1d"}, local...)...); err != nil {
		t.Fatalf("rotate --grace 1d: %v %s", err, stderr)
	}

	// A deny exits 3 with --json as without, and the JSON is still printed.
	stdout, _, err = p.CLI(t, nil, append([]string{"tokengate", "check", "--token-id", issued.Token.ID, "--service", "other", "--json"}, local...)...)
	var res struct {
		Allow   bool     `json:"allow"`
		Reasons []string `json:"reasons"`
	}
	if exitCode(err) != 3 || json.Unmarshal([]byte(stdout), &res) != nil || res.Allow || len(res.Reasons) == 0 {
		t.Fatalf("check --json of a deny: err %v (want exit status 3), out %s", err, stdout)
	}

	stdout, stderr, err = issue("1h")
	var second struct {
		Token struct{ ID string } `json:"token"`
	}
	if err != nil || json.Unmarshal([]byte(stdout), &second) != nil {
		t.Fatalf("issue: %v %s %s", err, stdout, stderr)
	}
	stdout, stderr, err = p.CLI(t, nil, append([]string{"tokengate", "report"}, local...)...)
	if err != nil || !strings.Contains(stdout, "never used: ") || !strings.Contains(between(stdout, "never used: ", "\n\n"), second.Token.ID) {
		t.Fatalf("report text must name the tokens: %v\n%s\n%s", err, stdout, stderr)
	}

	// No Caddy at the address: the error says how to point at one.
	_, stderr, err = p.CLI(t, nil, "tokengate", "list", "--address", fmt.Sprintf("127.0.0.1:%d", caddyproc.FreePort(t)))
	if exitCode(err) != 1 || !strings.Contains(stderr, "is Caddy running?") || !strings.Contains(stderr, "--address") {
		t.Fatalf("list with no Caddy: %v %s", err, stderr)
	}
}

package caddymodule

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
)

// The tests in this package drive real Caddy: real listeners, real HTTP,
// a real upstream, the real bbolt store and OPA. Only the clock is fake.
//
// Each env runs its own Caddy, a child process: this test binary run
// again as Caddy (childCaddy), so it has exactly the modules these tests
// register, the test clock and the test control routes too. Caddy holds
// one config per process, so tests on their own processes can run side
// by side (t.Parallel). The few tests that must reach into a running
// app's memory use one in-process Caddy instead (newInProcessEnv), one
// at a time.

// childCaddyVariable, set to 1, makes the test binary run as Caddy.
const childCaddyVariable = "TOKENGATE_TEST_CADDY_CHILD"

// The in-process Caddy's listeners are on loopback ports chosen free when
// the tests start: Caddy binds with SO_REUSEPORT, so a fixed port another
// process holds would not fail but silently share that process's traffic.
// Only newInProcessEnv and the tests that load their own configs in
// process use them; each child env picks its own.
var inProcessPorts envPorts

// envPorts are the ports one Caddy listens on.
type envPorts struct {
	admin, gate, plain, mgmt, https int
}

// pickPorts picks five ports no other Caddy of this test process has.
func pickPorts() (envPorts, error) {
	// Below the ephemeral range, so that no outgoing connection of this
	// machine holds one when Caddy binds it (caddyproc.PickPort).
	ports := make([]int, 5)
	for i := range ports {
		p, err := caddyproc.PickPort()
		if err != nil {
			return envPorts{}, err
		}
		ports[i] = p
	}
	return envPorts{admin: ports[0], gate: ports[1], plain: ports[2], mgmt: ports[3], https: ports[4]}, nil
}

// isolateHome points HOME and the XDG folders at a temporary folder, so
// Caddy's data (its CA, the default store) and config dirs stay out of
// the user's.
func isolateHome() (cleanup func()) {
	dir, err := os.MkdirTemp("", "tokengate-home-")
	if err != nil {
		panic(err)
	}
	for _, v := range []string{"HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"} {
		os.Setenv(v, filepath.Join(dir, strings.ToLower(v)))
	}
	// Caddy computes these two from the environment when its package
	// initialises, before TestMain runs: without resetting them, the
	// autosaved config and Caddy's storage (instance id, locks, the
	// local CA) still land in the real user's folders.
	caddy.ConfigAutosavePath = filepath.Join(caddy.AppConfigDir(), "autosave.json")
	caddy.DefaultStorage = &certmagic.FileStorage{Path: caddy.AppDataDir()}
	return func() { os.RemoveAll(dir) }
}

// testClock is moved by tests instead of sleeping.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// fakeClock is the clock of the Caddy in this process: a child's, which
// its test moves through the control routes (env.advance), or the
// in-process one's.
var fakeClock = new(testClock)

// testClockModule is tokengate.clocks.test: the app reads fakeClock, which
// the tests move. Configs select it with "clock test".
type testClockModule struct{}

func (testClockModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "tokengate.clocks.test", New: func() caddy.Module { return new(testClockModule) }}
}

func (testClockModule) Now() time.Time { return fakeClock.Now() }

func TestMain(m *testing.M) {
	caddy.RegisterModule(testClockModule{})
	if os.Getenv(childCaddyVariable) == "1" {
		caddy.RegisterModule(testControl{})
		caddycmd.Main()
		return
	}
	var err error
	if inProcessPorts, err = pickPorts(); err != nil {
		panic(err)
	}
	caddytest.Default.AdminPort = inProcessPorts.admin
	cleanup := isolateHome()
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// upstream is a real HTTP server that records what reached it.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
}

func startUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.requests = append(u.requests, r)
		u.bodies = append(u.bodies, string(body))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}

// received returns the requests the upstream got for path.
func (u *upstream) received(path string) []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*http.Request
	for _, r := range u.requests {
		if r.URL.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// dump renders every request the upstream got, headers, query and body,
// for secret scanning.
func (u *upstream) dump() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var b strings.Builder
	for i, r := range u.requests {
		fmt.Fprintf(&b, "%s %s %v %s\n", r.Method, r.URL.String(), r.Header, u.bodies[i])
	}
	return b.String()
}

// env is one Caddy with its config and files.
type env struct {
	// requester and approver hold the bootstrap management tokens, once
	// bootstrap ran.
	requester, approver string
	t                   *testing.T
	dir                 string
	upstream            *upstream
	auditOff            bool

	ports      envPorts
	adminURL   string
	gateURL    string // trusts X-Forwarded-For from 127.0.0.1
	plainURL   string // trusts no proxy
	plainURLv6 string // the same server on ::1
	mgmtURL    string // the management API

	// proc is the env's own Caddy; nil for the in-process one, which
	// tester loads configs into.
	proc   *caddyproc.Process
	tester *caddytest.Tester

	clockMu sync.Mutex
	// clockOffset is how far the test moved its Caddy's clock.
	clockOffset time.Duration
}

type envOptions struct {
	policyDir     string
	decisionCache int
	extraRoutes   string
	// appOptions are more lines for the tokengate global option, such
	// as an oidc block.
	appOptions string
	// auditOff leaves the audit log out of the config: no logger takes
	// tokengate.audit, and the handler writes no line.
	auditOff bool
	// gracePeriod lets requests on the old config finish during a
	// reload; the default cuts them at once, for fast test turnover.
	gracePeriod string
	// loadTimeout bounds loading the config (5s by default), for a
	// reload that waits on the old config's stop.
	loadTimeout time.Duration
	// environ are variables (NAME=value) in the environment the env's
	// Caddy starts with, which {env.NAME} placeholders read.
	environ []string
}

// newEnv starts a Caddy of the test's own with the gateway on gatePort
// (trusting X-Forwarded-For from 127.0.0.1) and plainPort (trusting
// nobody), routing /billing/* (service billing) and /search/* (service
// search) to a real upstream, and writing Caddy's log and the audit log
// to files. It returns once every listener answers.
func newEnv(t *testing.T, o envOptions) *env {
	e := &env{t: t, dir: t.TempDir(), upstream: startUpstream(t)}
	e.load(o)
	t.Cleanup(e.checkNothingLeaked)
	return e
}

// newInProcessEnv is newEnv on the one Caddy in this process, for a test
// that reaches into the running app's memory. Such a test must not be
// parallel: every in-process env shares that Caddy and its ports.
func newInProcessEnv(t *testing.T, o envOptions) *env {
	e := &env{t: t, dir: t.TempDir(), upstream: startUpstream(t)}
	e.setPorts(inProcessPorts)
	e.tester = caddytest.NewTester(t)
	e.load(o)
	t.Cleanup(e.checkNothingLeaked)
	return e
}

// newEnvReusing loads a changed config into the same Caddy, over the same
// files and upstream.
func newEnvReusing(e *env, o envOptions) { e.load(o) }

func (e *env) setPorts(p envPorts) {
	e.ports = p
	e.adminURL = fmt.Sprintf("http://localhost:%d", p.admin)
	e.gateURL = fmt.Sprintf("http://127.0.0.1:%d", p.gate)
	e.plainURL = fmt.Sprintf("http://127.0.0.1:%d", p.plain)
	e.plainURLv6 = fmt.Sprintf("http://[::1]:%d", p.plain)
	e.mgmtURL = fmt.Sprintf("http://127.0.0.1:%d", p.mgmt)
}

func (e *env) load(o envOptions) {
	t := e.t
	t.Helper()
	switch {
	case e.tester != nil:
		e.tester.WithDefaultOverrides(caddytest.Config{LoadRequestTimeout: o.loadTimeout})
		e.tester.InitServer(e.config(o), "caddyfile")
	case e.proc == nil:
		e.proc = startChildCaddy(t, filepath.Join(e.dir, "home"), o.environ, func() (string, string) {
			ports, err := pickPorts()
			if err != nil {
				t.Fatal(err)
			}
			e.setPorts(ports)
			return fmt.Sprintf("localhost:%d", ports.admin), e.config(o)
		})
	default:
		if status, body := e.proc.Load(t, e.config(o), false, o.loadTimeout); status != http.StatusOK {
			t.Fatalf("loading the config: %d %s", status, body)
		}
	}
	settleServers(e.gateURL, e.mgmtURL)
	if t.Failed() {
		t.FailNow()
	}
}

// config is the env's Caddyfile for o.
func (e *env) config(o envOptions) string {
	t := e.t
	policy := ""
	if o.policyDir != "" {
		policy = "policy " + o.policyDir
	}
	cfg := fmt.Sprintf(`{
	skip_install_trust
	persist_config off
	default_bind 127.0.0.1 [::1]
	admin localhost:%[7]d
	http_port %[8]d
	https_port %[11]d
	grace_period %[6]s
	servers 127.0.0.1:%[8]d {
		trusted_proxies static 127.0.0.1/32
		client_ip_headers X-Forwarded-For
	}
	tokengate {
		store bolt %[1]s/tokens.db
		clock test
		decision_cache %[3]d
		max_ttl 48h
		%[4]s
		%[12]s
	}
	log default {
		output file %[1]s/caddy.log
		format json
		level DEBUG
	}
	log audit {
		include tokengate.audit
		output tokengate_audit %[1]s/audit.log {
			checkpoint_every 200ms
		}
		format json
	}
	log checkpoints {
		include tokengate.checkpoint
		output file %[1]s/checkpoint.log
		format json
	}
}
:%[8]d, :%[9]d {
	log {
		output file %[1]s/access.log
		# Caddy redacts Authorization in access logs, but not a custom
		# credential header: filter it, as the README tells operators to.
		format filter {
			request>headers>X-Api-Key delete
			request>uri regexp "(?i)(t|%%74)(g|%%67)(_|%%5f)([0-9a-z]|%%[0-9a-f]{2}|\p{Cf}){16,}" "tg_[redacted]"
		}
	}
	route /billing/* {
		tokengate billing
		reverse_proxy %[2]s
	}
	route /search/* {
		tokengate {
			service search
			header X-Api-Key
		}
		reverse_proxy %[2]s
	}
	%[5]s
	respond "no route" 404
}
:%[10]d {
	tokengate_admin
}
`, e.dir, e.upstream.Listener.Addr().String(), o.decisionCache, policy, o.extraRoutes, cmp.Or(o.gracePeriod, "1ns"),
		e.ports.admin, e.ports.gate, e.ports.plain, e.ports.mgmt, e.ports.https, o.appOptions)
	if o.auditOff {
		auditLog := fmt.Sprintf("\tlog audit {\n\t\tinclude tokengate.audit\n\t\toutput tokengate_audit %s/audit.log {\n\t\t\tcheckpoint_every 200ms\n\t\t}\n\t\tformat json\n\t}\n", e.dir)
		if !strings.Contains(cfg, auditLog) {
			t.Fatal("the env's audit log block moved; update auditOff")
		}
		cfg = strings.Replace(cfg, auditLog, "", 1)
		// Caddy's default log would take the lines otherwise.
		cfg = strings.Replace(cfg, "\tlog default {\n", "\tlog default {\n\t\texclude tokengate.audit\n", 1)
		e.auditOff = true
	}
	return cfg
}

// checkNothingLeaked runs after every test: every audit line matches the
// schema, and no secret issued so far appears in any log file (Caddy's
// own at DEBUG level, the access log, the audit log), in what the Caddy
// process printed, or in anything the upstream received.
func (e *env) checkNothingLeaked() {
	lines := e.auditLines()
	if len(lines) == 0 && !e.auditOff {
		e.t.Error("the test wrote no audit line at all")
	}
	// The checkpoints signed so far, as a witness receives them and as
	// the writer keeps them beside the file.
	lines = append(lines, readJSONLines(e.t, filepath.Join(e.dir, "checkpoint.log"))...)
	lines = append(lines, readJSONLines(e.t, filepath.Join(e.dir, "audit.log.checkpoints"))...)
	validateAgainstSchema(e.t, lines)
	for _, name := range []string{"audit.log", "checkpoint.log", "audit.log.checkpoints"} {
		keepAuditSample(e.t, filepath.Join(e.dir, name))
	}
	var haystack strings.Builder
	for _, name := range []string{"audit.log", "checkpoint.log", "caddy.log", "access.log"} {
		b, err := os.ReadFile(filepath.Join(e.dir, name))
		if err != nil && !os.IsNotExist(err) {
			e.t.Fatal(err)
		}
		haystack.Write(b)
	}
	haystack.WriteString(e.upstream.dump())
	if e.proc != nil {
		// What the env's Caddy printed before its config's logs took over.
		haystack.WriteString(e.proc.Output())
	}
	secretsSeen.Lock()
	defer secretsSeen.Unlock()
	for _, s := range secretsSeen.list {
		// The random part alone, in case something re-encoded the prefix.
		if strings.Contains(haystack.String(), s[3:33]) {
			e.t.Errorf("secret of an issued token found in logs or upstream traffic")
		}
	}
}

var secretsSeen = struct {
	sync.Mutex
	list []string
}{}

// issue creates a token through the admin endpoint, as `caddy tokengate
// issue` does, and returns its secret and id.
func (e *env) issue(spec map[string]any) (secret, id string) {
	e.t.Helper()
	status, body := e.admin(http.MethodPost, "/tokengate/tokens", spec)
	if status != http.StatusCreated {
		e.t.Fatalf("issue: %d %s", status, body)
	}
	var issued IssuedToken
	if err := json.Unmarshal(body, &issued); err != nil {
		e.t.Fatal(err)
	}
	remember(issued.Secret)
	return issued.Secret, issued.Token.ID
}

func billingReader(extra map[string]any) map[string]any {
	spec := map[string]any{
		"owner": "alice", "purpose": "read invoices for the nightly report",
		"scopes": []string{"billing:read"}, "services": []string{"billing"}, "ttl": "1h",
	}
	for k, v := range extra {
		spec[k] = v
	}
	return spec
}

// admin calls Caddy's admin endpoint, as the CLI does locally.
func (e *env) admin(method, path string, body any) (int, []byte) {
	e.t.Helper()
	return e.send(e.adminURL, "", method, path, body)
}

// send makes one JSON call, with a bearer secret when given.
func (e *env) send(base, secret, method, path string, body any) (int, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, r)
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// response is what a client saw.
type response struct {
	status int
	header http.Header
	body   []byte
	sent   []byte // the JSON body of the request, when callAt sent one
	reason string
	reqID  string
}

// call sends one request to the gateway. headers are name/value pairs;
// a name may repeat.
func call(t *testing.T, method, url string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: body}
	// The data plane answers application/json, the management API
	// application/problem+json; both carry "reason".
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode >= 400 && (strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "application/problem+json")) {
		var e struct {
			Reason    string `json:"reason"`
			RequestID string `json:"request_id"`
		}
		_ = json.Unmarshal(body, &e)
		r.reason, r.reqID = e.Reason, e.RequestID
	}
	return r
}

func bearer(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

// auditLines returns every audit line written so far.
func (e *env) auditLines() []map[string]any {
	return readJSONLines(e.t, filepath.Join(e.dir, "audit.log"))
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line is not JSON: %q", path, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// settleDecisionCaches returns once every decision the running gates have
// cached can be read back (ristretto applies writes asynchronously), so a
// test can say the next identical call is a hit.
func settleDecisionCaches() {
	runtimes.Range(func(_, v any) bool {
		for _, p := range v.(runtime).Attached() {
			p.Gate.SettleDecisions()
		}
		return true
	})
}

// auditFor waits for the decision line of the call to path (paths are
// unique per call in these tests) and returns it. The line is written
// after the response, so it may land a moment after the client saw it.
func (e *env) auditFor(path string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var found []map[string]any
		for _, l := range e.auditLines() {
			if l["msg"] == "decision" && l["path"] == path {
				found = append(found, l)
			}
		}
		if len(found) == 1 {
			return found[0]
		}
		if len(found) > 1 {
			e.t.Fatalf("%d audit lines for %s, want one", len(found), path)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no audit line for %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keepAuditSample appends the test's audit lines, as written, to the file
// TOKENGATE_AUDIT_SAMPLE names, so that CI can check real lines with a
// second, independent validator (ajv, in .ci/run).
func keepAuditSample(t *testing.T, path string) {
	out := os.Getenv("TOKENGATE_AUDIT_SAMPLE")
	if out == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return // the lines were read above; a test may have moved the file since
	}
	f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// validateAgainstSchema checks lines with OPA's json.match_schema, the
// same JSON Schema validator a Rego policy would use.
func validateAgainstSchema(t *testing.T, lines []map[string]any) {
	t.Helper()
	var schema any
	if err := json.Unmarshal(audit.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(rego.Query("x := json.match_schema(input.line, input.schema)")).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range lines {
		rs, err := pq.Eval(context.Background(), rego.EvalInput(map[string]any{"line": line, "schema": schema}))
		if err != nil || len(rs) != 1 {
			t.Fatalf("validating %v: %v", line, err)
		}
		result := rs[0].Bindings["x"].([]any)
		if ok, _ := result[0].(bool); !ok {
			t.Errorf("audit line does not match the schema: %v\nline: %v", result[1], line)
		}
	}
}

// remember records a secret for the leak scan.
func remember(secret string) {
	secretsSeen.Lock()
	secretsSeen.list = append(secretsSeen.list, secret)
	secretsSeen.Unlock()
}

// bootstrap creates the requester (alice) and approver (bob) management
// tokens through the admin endpoint, once per env.
func (e *env) bootstrap() {
	e.t.Helper()
	if e.requester != "" {
		return
	}
	status, body := e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": "alice", "approver": "bob"})
	if status != http.StatusCreated {
		e.t.Fatalf("bootstrap: %d %s", status, body)
	}
	var res BootstrapResult
	if err := json.Unmarshal(body, &res); err != nil || len(res.Tokens) != 2 {
		e.t.Fatalf("bootstrap result %s", body)
	}
	for _, tok := range res.Tokens {
		remember(tok.Secret)
		switch tok.Token.Owner {
		case "alice":
			e.requester = tok.Secret
		case "bob":
			e.approver = tok.Secret
		}
	}
}

// mgmt calls the management API with a management token.
func (e *env) mgmt(secret, method, path string, body any) (int, []byte) {
	e.t.Helper()
	return e.send(e.mgmtURL, secret, method, path, body)
}

// approvedToken gets a token through the two-person flow: alice asks, bob
// approves, alice claims. It returns the secret and the token id.
func (e *env) approvedToken(spec map[string]any) (string, string) {
	e.t.Helper()
	e.bootstrap()
	status, body := e.mgmt(e.requester, "POST", "/v1/requests", spec)
	if status != http.StatusAccepted {
		e.t.Fatalf("request: %d %s", status, body)
	}
	var asked RequestOutcome
	_ = json.Unmarshal(body, &asked)
	if status, body := e.mgmt(e.approver, "POST", "/v1/requests/"+asked.Request.ID+"/approve", map[string]string{"reason": "ok"}); status != 200 {
		e.t.Fatalf("approve: %d %s", status, body)
	}
	status, body = e.mgmt(e.requester, "POST", "/v1/requests/"+asked.Request.ID+"/claim", nil)
	if status != http.StatusCreated {
		e.t.Fatalf("claim: %d %s", status, body)
	}
	var claimed RequestOutcome
	_ = json.Unmarshal(body, &claimed)
	remember(claimed.Secret)
	return claimed.Secret, claimed.Token.ID
}

// settleServers returns once the servers of the config just loaded answer
// on new connections, on every site given. The servers of the config it
// replaced stop meanwhile: a connection one of them accepted, or a
// keep-alive one of http.DefaultClient (which the tests' requests go
// through), ends in EOF.
func settleServers(sites ...string) {
	http.DefaultClient.CloseIdleConnections()
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	answers := func(u string) bool {
		resp, err := fresh.Get(u + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}
	// Three rounds in a row in which every site answers.
	for streak, deadline := 0, time.Now().Add(3*time.Second); streak < 3 && time.Now().Before(deadline); {
		all := true
		for _, site := range sites {
			all = all && answers(site)
		}
		if all {
			streak++
		} else {
			streak = 0
			time.Sleep(10 * time.Millisecond)
		}
	}
}

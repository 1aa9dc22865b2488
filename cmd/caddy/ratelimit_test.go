package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/policies"
)

// rateCall sends GET /svc/x with the secret and returns the answer's
// status, rate-limit fields and, for a refusal, its reason and request id.
type rateAnswer struct {
	status                    int
	reason, requestID         string
	retryAfter, policy, state string
}

func (n *node) rateCall(t *testing.T, secret string) rateAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.url+"/svc/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := rateAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"),
		policy: resp.Header.Get("RateLimit-Policy"), state: resp.Header.Get("RateLimit")}
	if resp.StatusCode != http.StatusOK {
		a.reason = regexp.MustCompile(`"reason":"([a-z_]+)"`).FindStringSubmatch(string(body))[1]
		a.requestID = regexp.MustCompile(`"request_id":"([^"]+)"`).FindStringSubmatch(string(body))[1]
	}
	return a
}

// waitForFreshWindow returns once the current minute has at least 30
// seconds left, so calls counted against a per-minute limit all fall in
// one window.
func waitForFreshWindow() {
	if left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)); left < 30*time.Second {
		time.Sleep(left + 100*time.Millisecond)
	}
}

// A token limited to 30 a minute, called 100 times across two nodes that
// share PostgreSQL, passes 27 to 33 times; refusals are 429 rate_limited
// with Retry-After and the RateLimit fields, and audited so; the refusals
// are counted by service; a token without a limit is untouched.
func TestMultiNodeRateLimit(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	limited := c.a.issue(t, "rate-limited", "--rate", "30/1m")
	unlimited := c.b.issue(t, "unlimited")

	waitForFreshWindow()
	ok := 0
	var refused rateAnswer
	var refusedOn *node
	for i := range 100 {
		n := []*node{c.a, c.b}[i%2]
		a := n.rateCall(t, limited.Secret)
		switch {
		case a.status == http.StatusOK:
			ok++
			if a.policy != `"token";q=30;w=60` || !strings.HasPrefix(a.state, `"token";r=`) {
				t.Fatalf("an allowed call's fields: RateLimit-Policy %q, RateLimit %q", a.policy, a.state)
			}
		case a.status == http.StatusTooManyRequests && a.reason == "rate_limited":
			refused, refusedOn = a, n
		default:
			t.Fatalf("call %d on %s: %d %s", i+1, n.name, a.status, a.reason)
		}
	}
	if ok < 27 || ok > 33 {
		t.Fatalf("two nodes passed %d of 100 calls of a token limited to 30/1m, want 27..33", ok)
	}
	t.Logf("two nodes passed %d of 100 calls under 30/1m", ok)

	retry, err := strconv.Atoi(refused.retryAfter)
	if err != nil || retry < 1 || retry > 60 {
		t.Errorf("Retry-After %q, want the seconds left in the minute", refused.retryAfter)
	}
	if refused.policy != `"token";q=30;w=60` || !regexp.MustCompile(`^"token";r=0;t=\d+$`).MatchString(refused.state) {
		t.Errorf("a refusal's fields: RateLimit-Policy %q, RateLimit %q", refused.policy, refused.state)
	}
	line := refusedOn.auditLine(t, refused.requestID)
	if line.Decision != "deny" || len(line.Reasons) != 1 || line.Reasons[0] != "rate_limited" || line.Status != http.StatusTooManyRequests || line.TokenID != limited.Token.ID {
		t.Errorf("audit line of a rate-limited call: %+v", line)
	}
	if got := metricValue(t, refusedOn, `tokengate_rate_limited_total{service="svc"}`); got < 1 {
		t.Errorf("tokengate_rate_limited_total{service=\"svc\"} on %s is %v", refusedOn.name, got)
	}

	for i := range 100 {
		if a := []*node{c.a, c.b}[i%2].rateCall(t, unlimited.Secret); a.status != http.StatusOK || a.policy != "" || a.state != "" {
			t.Fatalf("a token without a limit, call %d: %d %s, RateLimit-Policy %q", i+1, a.status, a.reason, a.policy)
		}
	}
}

// metricValue reads one sample from the node's Prometheus endpoint.
func metricValue(t *testing.T, n *node, sample string) float64 {
	t.Helper()
	hc, base := caddyproc.AdminClient(n.Admin)
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

const rateNodeCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	tokengate {
		store bolt {DIR}/tokens.db
		policy {DIR}/policies
	}
	log default {
		exclude tokengate.audit
	}
	log audit {
		include tokengate.audit
		output file {DIR}/audit.log
		format json
	}
}

http://127.0.0.1:{PORT} {
	bind 127.0.0.1
	route /svc/* {
		tokengate svc
		reverse_proxy {UPSTREAM}
	}
}
`

// policyAssignedLimit is added to the shipped gateway policy: tokens of
// owner "policy-limited" get 5 calls a minute.
const policyAssignedLimit = `package tokengate.gateway

rate_limit := {"requests": 5, "window": "1m"} if input.token.owner == "policy-limited"
`

// startRateNode starts one node on a bolt file and a policy folder in dir
// (the shipped policies and policyAssignedLimit), keeping both across
// restarts.
func startRateNode(t *testing.T, dir, upstream string) *node {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "policies")); err != nil {
		if err := os.CopyFS(filepath.Join(dir, "policies"), policies.FS); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "policies", "rate.rego"), []byte(policyAssignedLimit), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var port string
	p := caddyproc.StartOnFreePorts(t, dir, func() (string, string) {
		admin := fmt.Sprintf("127.0.0.1:%d", caddyproc.FreePort(t))
		port = fmt.Sprint(caddyproc.FreePort(t))
		return admin, strings.NewReplacer("{ADMIN}", strings.TrimPrefix(admin, "127.0.0.1:"), "{DIR}", dir,
			"{PORT}", port, "{UPSTREAM}", upstream).Replace(rateNodeCaddyfile)
	})
	n := &node{Process: p, name: "rate-node", url: "http://127.0.0.1:" + port, audit: filepath.Join(dir, "audit.log")}
	eventually(t, 10*time.Second, "the node serves HTTP", func() (bool, string) {
		status, reason, _ := n.call(t, "")
		return status == http.StatusUnauthorized && reason == "token_missing", fmt.Sprintf("%d %s", status, reason)
	})
	return n
}

// passes counts how many of n calls pass.
func (n *node) passes(t *testing.T, secret string, calls int) int {
	t.Helper()
	ok := 0
	for range calls {
		switch a := n.rateCall(t, secret); {
		case a.status == http.StatusOK:
			ok++
		case a.status != http.StatusTooManyRequests || a.reason != "rate_limited":
			t.Fatalf("%d %s, want 200 or 429 rate_limited", a.status, a.reason)
		}
	}
	return ok
}

// A limit the gateway policy assigns is enforced (the stricter of it and
// the token's own), and a daily quota counted before a graceful restart
// holds after it, exactly.
func TestPolicyLimitAndDailyQuotaAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	t.Cleanup(upstream.Close)
	n := startRateNode(t, dir, upstream.URL)

	waitForFreshWindow()
	byPolicy := n.issue(t, "policy-limited")
	if got := n.passes(t, byPolicy.Secret, 8); got != 5 {
		t.Errorf("the policy's 5/1m passed %d of 8 calls", got)
	}
	// The token's own 3/1m is stricter than the policy's 5/1m.
	both := n.issue(t, "policy-limited", "--rate", "3/1m")
	if got := n.passes(t, both.Secret, 8); got != 3 {
		t.Errorf("the token's 3/1m under the policy's 5/1m passed %d of 8 calls", got)
	}
	if a := n.rateCall(t, both.Secret); a.policy != `"token";q=3;w=60` {
		t.Errorf("RateLimit-Policy %q, want the token's stricter limit", a.policy)
	}

	daily := n.issue(t, "quota", "--rate", "10/24h")
	if got := n.passes(t, daily.Secret, 4); got != 4 {
		t.Fatalf("4 calls of a 10/24h quota: %d passed", got)
	}
	if _, stderr, err := n.CLI(t, nil, "stop", "--address", n.Admin); err != nil {
		t.Fatalf("caddy stop: %v\n%s", err, stderr)
	}
	eventually(t, 10*time.Second, "the node stopped", func() (bool, string) { return n.Exited(), "" })

	n = startRateNode(t, dir, upstream.URL)
	if got := n.passes(t, daily.Secret, 10); got != 6 {
		t.Errorf("after a restart a 10/24h quota with 4 calls spent passed %d of 10 more, want exactly 6", got)
	}
}

// A node cut off from PostgreSQL keeps enforcing its local share of a
// token's limit (about half here: the two nodes took the budget evenly),
// not the whole limit.
func TestMultiNodeRateLimitWhileCutOff(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	tok := c.a.issue(t, "rate-cut-off", "--rate", "40/1m")
	// Listening started with dropping the caches; the calls below must
	// leave the token in them.
	eventually(t, 5*time.Second, "both nodes listening", func() (bool, string) {
		n := c.db.listeners(t)
		return n == 2, fmt.Sprintf("%d listening sessions", n)
	})
	waitForFreshWindow()
	for i := range 20 {
		if a := []*node{c.a, c.b}[i%2].rateCall(t, tok.Secret); a.status != http.StatusOK {
			t.Fatalf("call %d before the outage: %d %s", i+1, a.status, a.reason)
		}
	}
	c.db.cutOff(t)
	// Node A allowed 10; its share of 40 is about 20, a little more when
	// its last take (leases run ahead of the calls) came after B's. With
	// the whole limit it would allow 30 more.
	more := c.a.passes(t, tok.Secret, 40)
	if more < 5 || more > 20 {
		t.Fatalf("node A cut off from the store allowed %d more calls of a 40/1m token after 10, want about 10 (its half), at most 20", more)
	}
	t.Logf("node A cut off from the store allowed %d more calls after 10 under 40/1m", more)
}

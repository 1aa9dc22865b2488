package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/testutil/pgtest"
)

// These tests run two real Caddy processes against one PostgreSQL database,
// as a multi-node deployment does: a change made through one node must be
// enforced by the other.

// maxPropagation is the bound on how long a revoke or rotate on one node
// may take to be enforced by another.
const maxPropagation = time.Second

// testDB is one test's share of the database: a login role of its own and
// a schema that role owns. The role lets the test take the database away
// from its nodes (and only from them) and give it back.
type testDB struct {
	admin string // URL of the role that creates and drops the test's objects
	role  string // also the schema name and the nodes' application_name
	dsn   string // what the nodes connect with
}

// newTestDB creates the role and schema, dropped when the test ends. It
// skips the test when PostgreSQL cannot be reached, unless CI=true.
func newTestDB(t *testing.T) *testDB {
	t.Helper()
	u, conn := pgtest.Connect(t, " (its role must be allowed to create roles)")
	admin := u.String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	db := &testDB{admin: admin, role: "tg_mn_" + strings.ToLower(rand.Text()[:12])}
	t.Cleanup(func() {
		// Runs after the nodes were killed (cleanups run last-in first-out).
		db.exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", db.role)
		db.exec(t, "DROP SCHEMA IF EXISTS "+db.role+" CASCADE")
		db.exec(t, "DROP ROLE IF EXISTS "+db.role)
	})
	password := rand.Text()
	if _, err := conn.Exec(ctx, "CREATE ROLE "+db.role+" LOGIN PASSWORD '"+password+"'"); err != nil {
		t.Fatalf("creating role %s: %v", db.role, err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+db.role+" AUTHORIZATION "+db.role); err != nil {
		t.Fatalf("creating schema %s: %v", db.role, err)
	}

	u.User = url.UserPassword(db.role, password)
	q := u.Query()
	// options reaches the server as a startup parameter, so every
	// connection of the pool, the LISTEN connection included, uses the
	// test's schema; checked below rather than trusted.
	q.Set("options", "-c search_path="+db.role)
	q.Set("application_name", db.role)
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	db.dsn = u.String()

	check, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		t.Fatalf("connecting as the test role: %v", err)
	}
	defer check.Close(ctx)
	var searchPath, app string
	if err := check.QueryRow(ctx, "SELECT current_setting('search_path'), current_setting('application_name')").Scan(&searchPath, &app); err != nil {
		t.Fatal(err)
	}
	if searchPath != db.role || app != db.role {
		t.Fatalf("DSN %s gives search_path %q and application_name %q, want %q", u.Redacted(), searchPath, app, db.role)
	}
	return db
}

// exec runs one statement as the admin role.
func (db *testDB) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		t.Errorf("%s: %v", sql, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}

// count runs a count query as the admin role.
func (db *testDB) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// cutOff takes the database away from the test's nodes: their role may no
// longer log in, and every session it has is ended.
func (db *testDB) cutOff(t *testing.T) {
	t.Helper()
	db.exec(t, "ALTER ROLE "+db.role+" NOLOGIN")
	// pg_terminate_backend only signals a session to end; wait until they
	// all have, so that no call made after cutOff returns can still be
	// answered by the store.
	eventually(t, 5*time.Second, "the nodes' sessions ended", func() (bool, string) {
		db.exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = $1 AND application_name = $2`, db.role, db.role)
		n := db.count(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", db.role)
		return n == 0, fmt.Sprintf("%d sessions left", n)
	})
}

// restore lets the test's nodes connect again.
func (db *testDB) restore(t *testing.T) {
	t.Helper()
	db.exec(t, "ALTER ROLE "+db.role+" LOGIN")
}

// listeners counts the test's change feed sessions: idle between reads of
// the feed, or just after LISTEN.
func (db *testDB) listeners(t *testing.T) int {
	return db.count(t, `SELECT count(*) FROM pg_stat_activity
		WHERE usename = $1 AND state = 'idle'
		AND (query ILIKE 'LISTEN %' OR query LIKE 'SELECT pg_current_snapshot()%')`, db.role)
}

// node is one running gateway.
type node struct {
	*caddyproc.Process
	name  string
	url   string // the gateway site
	audit string // path of its audit log
}

const nodeCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	tokengate {
		store postgres "{DSN}"
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

func startNode(t *testing.T, name, dsn, upstream string) *node {
	t.Helper()
	return startNodeFrom(t, nodeCaddyfile, name, dsn, upstream)
}

// startNodeFrom starts a node from a Caddyfile template with nodeCaddyfile's
// placeholders.
func startNodeFrom(t *testing.T, template, name, dsn, upstream string) *node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	admin := fmt.Sprintf("127.0.0.1:%d", caddyproc.FreePort(t))
	port := fmt.Sprint(caddyproc.FreePort(t))
	caddyfile := strings.NewReplacer(
		"{ADMIN}", strings.TrimPrefix(admin, "127.0.0.1:"),
		"{DSN}", dsn,
		"{DIR}", dir,
		"{PORT}", port,
		"{UPSTREAM}", upstream,
	).Replace(template)
	p := caddyproc.Start(t, dir, admin, caddyfile)
	n := &node{Process: p, name: name, url: "http://127.0.0.1:" + port, audit: filepath.Join(dir, "audit.log")}
	eventually(t, 10*time.Second, name+" serves HTTP", func() (bool, string) {
		status, reason, _ := n.call(t, "")
		return status == http.StatusUnauthorized && reason == "token_missing", fmt.Sprintf("%d %s", status, reason)
	})
	return n
}

// cluster is two nodes sharing one database and one upstream.
type cluster struct {
	db   *testDB
	a, b *node
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	db := newTestDB(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "credential reached the upstream", http.StatusTeapot)
			return
		}
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(upstream.Close)
	return &cluster{
		db: db,
		a:  startNode(t, "node-a", db.dsn, upstream.URL),
		b:  startNode(t, "node-b", db.dsn, upstream.URL),
	}
}

// tokengate runs `caddy tokengate <args...>` against the node's admin
// endpoint and returns stdout; it fails the test if the command fails.
func (n *node) tokengate(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := n.tryTokengate(t, args...)
	if err != nil {
		t.Fatalf("caddy tokengate %s on %s: %v\n%s", strings.Join(args, " "), n.name, err, stderr)
	}
	return stdout
}

func (n *node) tryTokengate(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return n.CLI(t, nil, append([]string{"tokengate", args[0], "--address", n.Admin}, args[1:]...)...)
}

type issued struct {
	Secret string    `json:"secret"`
	Token  tokenView `json:"token"`
}

type tokenView struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	Owner      string     `json:"owner"`
	Uses       int64      `json:"uses"`
	RevokedBy  string     `json:"revoked_by"`
	LastUsedAt *time.Time `json:"last_used_at"`
	UsedScopes []string   `json:"used_scopes"`
}

// issue issues a token for service svc on this node with the CLI.
func (n *node) issue(t *testing.T, owner string, extra ...string) issued {
	t.Helper()
	args := append([]string{"issue", "--json", "--owner", owner, "--purpose", "multi-node test",
		"--scope", "svc:read", "--service", "svc", "--ttl", "1h"}, extra...)
	var out issued
	if err := json.Unmarshal([]byte(n.tokengate(t, args...)), &out); err != nil {
		t.Fatalf("issue --json: %v", err)
	}
	if out.Secret == "" || out.Token.ID == "" {
		t.Fatalf("issue --json printed no secret or id: %+v", out.Token)
	}
	return out
}

func (n *node) show(t *testing.T, id string) tokenView {
	t.Helper()
	var v tokenView
	if err := json.Unmarshal([]byte(n.tokengate(t, "show", id)), &v); err != nil {
		t.Fatalf("show: %v", err)
	}
	return v
}

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
}

// call sends GET /svc/x with the secret and returns the status, and for a
// refusal the reason and request id of the JSON body.
func (n *node) call(t *testing.T, secret string) (status int, reason, requestID string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.url+"/svc/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error(), ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "", ""
	}
	var refusal struct {
		Reason    string `json:"reason"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(body, &refusal); err != nil {
		return resp.StatusCode, strings.TrimSpace(string(body)), ""
	}
	return resp.StatusCode, refusal.Reason, refusal.RequestID
}

// mustCall fails the test unless the call gets the wanted status.
func (n *node) mustCall(t *testing.T, secret string, want int) {
	t.Helper()
	if status, reason, _ := n.call(t, secret); status != want {
		t.Fatalf("%s answered %d %s, want %d", n.name, status, reason, want)
	}
}

type auditLine struct {
	Logger    string   `json:"logger"`
	Msg       string   `json:"msg"`
	Decision  string   `json:"decision"`
	Reasons   []string `json:"reasons"`
	Status    int      `json:"status"`
	TokenID   string   `json:"token_id"`
	RequestID string   `json:"request_id"`
	Cache     string   `json:"cache"`
}

// auditLines reads the node's audit log.
func (n *node) auditLines(t *testing.T) []auditLine {
	t.Helper()
	f, err := os.Open(n.audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []auditLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line is not JSON: %v\n%s", err, sc.Text())
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// auditLine waits for the audit line of one call; it is written after the
// response.
func (n *node) auditLine(t *testing.T, requestID string) auditLine {
	t.Helper()
	var found auditLine
	eventually(t, 2*time.Second, "audit line of request "+requestID, func() (bool, string) {
		for _, l := range n.auditLines(t) {
			if l.RequestID == requestID && l.Msg == "decision" {
				found = l
				return true, ""
			}
		}
		return false, "not written"
	})
	return found
}

// eventually polls cond until it holds, failing the test after timeout
// with cond's last explanation.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, last := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitForDeny calls the node as fast as it reasonably can until it refuses
// the secret with 401 and the given reason, and returns when that first
// happened.
func waitForDeny(t *testing.T, n *node, secret, reason string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		status, got, _ := n.call(t, secret)
		at := time.Now()
		switch {
		case status == http.StatusUnauthorized && got == reason:
			return at
		case status != http.StatusOK && status != http.StatusUnauthorized:
			t.Fatalf("%s answered %d %s while waiting for %s", n.name, status, got, reason)
		case status == http.StatusUnauthorized:
			t.Fatalf("%s refused with %s, want %s", n.name, got, reason)
		case at.After(deadline):
			t.Fatalf("%s still allows the token %s after the change", n.name, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// issueMany issues n tokens through the node's admin endpoint, on the
// route `caddy tokengate issue` calls. A CLI process per token would
// spend most of the latency test starting processes.
func issueMany(t *testing.T, on *node, n int) []issued {
	t.Helper()
	out := make([]issued, n)
	for i := range out {
		body := fmt.Sprintf(`{"owner":"owner%d","purpose":"multi-node test","scopes":["svc:read"],"services":["svc"],"ttl":"1h"}`, i)
		resp, err := client.Post("http://"+on.Admin+"/tokengate/tokens", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /tokengate/tokens on %s: %d %s", on.name, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, &out[i]); err != nil || out[i].Secret == "" {
			t.Fatalf("POST /tokengate/tokens on %s answered %s (%v)", on.name, b, err)
		}
	}
	return out
}

// latencies summarises propagation times.
type latencies []time.Duration

func (l latencies) percentile(p float64) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1 // nearest rank
	return s[max(0, min(i, len(s)-1))]
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s over %d trials",
		l.percentile(0.50).Round(10*time.Microsecond), l.percentile(0.99).Round(10*time.Microsecond),
		l.percentile(1).Round(10*time.Microsecond), len(l))
}

// A revoke or rotate made on node A is enforced by node B, which holds the
// token and an allow decision in its caches, within maxPropagation.
//
// Not parallel: the latencies are measured without this file's other
// tests competing for the CPU.
func TestMultiNodeRevokeAndRotatePropagate(t *testing.T) {
	c := startCluster(t)

	t.Run("revoke", func(t *testing.T) {
		const trials = 100
		toks := issueMany(t, c.a, trials)
		var sinceReturn, sinceStart latencies
		for _, tok := range toks {
			c.a.mustCall(t, tok.Secret, http.StatusOK)
			c.b.warm(t, tok)
			start := time.Now()
			c.a.tokengate(t, "revoke", tok.Token.ID, "--reason", "multi-node test")
			returned := time.Now()
			denied := waitForDeny(t, c.b, tok.Secret, "token_revoked", 5*time.Second)
			sinceReturn = append(sinceReturn, max(0, denied.Sub(returned)))
			sinceStart = append(sinceStart, denied.Sub(start))
		}
		t.Logf("revoke on A -> 401 token_revoked on B, from the CLI returning: %s", sinceReturn)
		t.Logf("revoke on A -> 401 token_revoked on B, from the CLI starting:  %s", sinceStart)
		if p99 := sinceReturn.percentile(0.99); p99 >= maxPropagation {
			t.Errorf("p99 propagation %s, want < %s", p99, maxPropagation)
		}
	})

	t.Run("rotate", func(t *testing.T) {
		const trials = 20
		toks := issueMany(t, c.a, trials)
		var sinceReturn latencies
		for _, tok := range toks {
			c.b.warm(t, tok)
			successor := strings.TrimSpace(c.a.tokengate(t, "rotate", tok.Token.ID, "--grace", "0s"))
			returned := time.Now()
			denied := waitForDeny(t, c.b, tok.Secret, "token_rotated", 5*time.Second)
			sinceReturn = append(sinceReturn, max(0, denied.Sub(returned)))
			c.b.mustCall(t, successor, http.StatusOK)
		}
		t.Logf("rotate --grace 0s on A -> 401 token_rotated on B: %s", sinceReturn)
		if p99 := sinceReturn.percentile(0.99); p99 >= maxPropagation {
			t.Errorf("p99 propagation %s, want < %s", p99, maxPropagation)
		}
	})
}

// warm calls the node with the token until it answers from its decision
// cache, so that a refusal after a change on the other node shows that
// the change reached this node's caches, not that they were cold. More
// than two calls are needed only when the node could not use its caches
// for a moment: past max_staleness without a confirmation from the change
// feed (a heartbeat late on a machine busy with other tests' databases),
// or the decision cache's buffered admission not done yet.
func (n *node) warm(t *testing.T, tok issued) {
	t.Helper()
	var seen []string
	for calls := 1; calls <= 20; calls++ {
		n.mustCall(t, tok.Secret, http.StatusOK)
		var last auditLine
		eventually(t, 2*time.Second, "audit lines of "+tok.Token.ID, func() (bool, string) {
			var lines []auditLine
			for _, l := range n.auditLines(t) {
				if l.TokenID == tok.Token.ID && l.Msg == "decision" {
					lines = append(lines, l)
				}
			}
			if len(lines) < calls {
				return false, fmt.Sprintf("%d of %d written", len(lines), calls)
			}
			last = lines[len(lines)-1]
			return true, ""
		})
		if calls >= 2 && last.Cache == "hit" {
			return
		}
		seen = append(seen, last.Cache)
		if calls >= 2 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Fatalf("%s never answered %s from its decision cache in 20 calls (caches: %v)", n.name, tok.Token.ID, seen)
}

// A use-limited token is spent atomically across nodes: of 60 concurrent
// calls, half on each node, exactly max_uses pass.
func TestMultiNodeUseLimitIsAtomic(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	tok := c.a.issue(t, "limited", "--max-uses", "3")

	const perNode = 30
	type answer struct {
		status int
		reason string
	}
	answers := make(chan answer, 2*perNode)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range []*node{c.a, c.b} {
		for range perNode {
			wg.Go(func() {
				<-start
				status, reason, _ := n.call(t, tok.Secret)
				answers <- answer{status, reason}
			})
		}
	}
	close(start)
	wg.Wait()
	close(answers)

	counts := map[answer]int{}
	for a := range answers {
		counts[a]++
	}
	want := map[answer]int{{http.StatusOK, ""}: 3, {http.StatusUnauthorized, "uses_exhausted"}: 2*perNode - 3}
	if !maps.Equal(counts, want) {
		t.Errorf("answers %v, want %v", counts, want)
	}
	if v := c.b.show(t, tok.Token.ID); v.Uses != 3 || v.State != "exhausted" {
		t.Errorf("after the calls the token has %d uses and state %s, want 3 and exhausted", v.Uses, v.State)
	}
}

// Usage of an unlimited token seen by node B is batched into the shared
// store and shows on node A within a few seconds.
func TestMultiNodeUsageRecords(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	tok := c.a.issue(t, "unlimited")
	if v := c.a.show(t, tok.Token.ID); v.LastUsedAt != nil || len(v.UsedScopes) != 0 {
		t.Fatalf("a fresh token shows last_used_at %v and used_scopes %q", v.LastUsedAt, v.UsedScopes)
	}
	before := time.Now()
	c.b.mustCall(t, tok.Secret, http.StatusOK)
	took := eventually(t, 5*time.Second, "usage recorded on B visible on A", func() (bool, string) {
		v := c.a.show(t, tok.Token.ID)
		ok := v.LastUsedAt != nil && !v.LastUsedAt.Before(before.Add(-time.Second)) && slices.Equal(v.UsedScopes, []string{"svc:read"})
		return ok, fmt.Sprintf("last_used_at %v, used_scopes %q", v.LastUsedAt, v.UsedScopes)
	})
	t.Logf("usage on B visible through A after %s", took.Round(time.Millisecond))
}

// While PostgreSQL is out of reach a node keeps answering, from its caches,
// the calls it answered just before, for max_staleness (2s) after its
// change feed last confirmed that it had seen every change; past that it
// fails closed (503, audit decision "error") on every call, cached or not.
// A call that needs the store fails closed from the start: a token the
// node never looked up, and every call of a use-limited token (its uses
// are counted in the store and its record is never cached). When
// PostgreSQL is back, every node serves again without a restart and its
// change feed works again.
//
// Not parallel: the outage is timed against max_staleness.
func TestMultiNodeSurvivesPostgresOutage(t *testing.T) {
	c := startCluster(t)
	nodes := []*node{c.a, c.b}
	seen := c.a.issue(t, "seen")
	unseen := c.a.issue(t, "unseen")
	limited := c.a.issue(t, "limited", "--max-uses", "10")
	// Listening started with dropping the caches; warm them after that.
	eventually(t, 5*time.Second, "both nodes listening", func() (bool, string) {
		n := c.db.listeners(t)
		return n == 2, fmt.Sprintf("%d listening sessions", n)
	})
	for _, n := range nodes {
		n.mustCall(t, limited.Secret, http.StatusOK)
	}
	time.Sleep(500 * time.Millisecond) // see above
	warmed := time.Now()
	for _, n := range nodes {
		// GET /svc/x from 127.0.0.1, the very call made during the
		// outage: its token record and its decision are now cached.
		n.warm(t, seen)
	}
	// servesFromCache checks that the node still answers the warmed call,
	// from its decision cache.
	servesFromCache := func(n *node, when string) {
		t.Helper()
		if age := time.Since(warmed); age >= gateway.CacheBound {
			t.Fatalf("%s: the caches were warmed %s ago, past gateway.CacheBound (%s); the test is too slow to show anything", when, age, gateway.CacheBound)
		}
		status, reason, l := n.callAudited(t, seen)
		if status != http.StatusOK || l.Decision != "allow" || l.Cache != "hit" {
			t.Errorf("%s, %s answered the cached token with %d %s, audited as decision %q cache %q; want 200, allow, hit",
				when, n.name, status, reason, l.Decision, l.Cache)
		}
	}

	c.db.cutOff(t)
	down := time.Now()
	for _, n := range nodes {
		servesFromCache(n, "at the start of the outage")

		// A token the node never looked up needs the store.
		status, reason, requestID := n.call(t, unseen.Secret)
		if status != http.StatusServiceUnavailable || reason != "store_unavailable" {
			t.Errorf("%s answered a token it never saw with %d %s during the outage, want 503 store_unavailable", n.name, status, reason)
		} else if l := n.auditLine(t, requestID); l.Decision != "error" || l.Status != http.StatusServiceUnavailable || !slices.Contains(l.Reasons, "store_unavailable") {
			t.Errorf("%s audited the 503 as decision %q status %d reasons %q, want error 503 [store_unavailable]", n.name, l.Decision, l.Status, l.Reasons)
		}

		// So does a use-limited token, even one the node has seen.
		status, reason, requestID = n.call(t, limited.Secret)
		if status != http.StatusServiceUnavailable || reason != "store_unavailable" {
			t.Errorf("%s answered a use-limited token with %d %s during the outage, want 503 store_unavailable", n.name, status, reason)
		} else if l := n.auditLine(t, requestID); l.Decision != "error" || l.Status != http.StatusServiceUnavailable {
			t.Errorf("%s audited the 503 of the use-limited token as decision %q status %d, want error 503", n.name, l.Decision, l.Status)
		}
	}
	if _, stderr, err := c.b.tryTokengate(t, "revoke", seen.Token.ID, "--reason", "during outage"); err == nil {
		t.Errorf("revoke succeeded while PostgreSQL was out of reach")
	} else {
		t.Logf("revoke during the outage: %s", strings.TrimSpace(stderr))
	}
	// Failed lookups, a failed revoke and the nodes' failed attempts to
	// listen again (the first ones 100, 200 and 400ms apart) did not drop
	// the caches.
	// Past max_staleness (2s) the nodes cannot confirm that they have
	// seen every change, and the cached call fails closed too.
	time.Sleep(time.Until(down.Add(maxStaleness + 100*time.Millisecond)))
	for _, n := range nodes {
		status, reason, _ := n.call(t, seen.Secret)
		if status != http.StatusServiceUnavailable || reason != "store_unavailable" {
			t.Errorf("%s answered the cached token with %d %s past max_staleness, want 503 store_unavailable", n.name, status, reason)
		}
	}
	t.Logf("outage lasted %s; caches warmed %s before its end",
		time.Since(down).Round(time.Millisecond), time.Since(warmed).Round(time.Millisecond))

	c.db.restore(t)
	restored := time.Now()
	for _, n := range nodes {
		eventually(t, 5*time.Second, n.name+" serves again after the outage", func() (bool, string) {
			status, reason, _ := n.call(t, unseen.Secret)
			return status == http.StatusOK, fmt.Sprintf("%d %s", status, reason)
		})
	}
	t.Logf("both nodes served again %s after PostgreSQL came back", time.Since(restored).Round(time.Millisecond))
	eventually(t, 10*time.Second, "both nodes listening again", func() (bool, string) {
		n := c.db.listeners(t)
		return n == 2, fmt.Sprintf("%d listening sessions", n)
	})
	t.Logf("both nodes listening again %s after PostgreSQL came back", time.Since(restored).Round(time.Millisecond))

	// No use was spent during the outage.
	c.a.mustCall(t, limited.Secret, http.StatusOK)
	if v := c.b.show(t, limited.Token.ID); v.Uses != 3 {
		t.Errorf("the use-limited token has %d uses after 2 calls before the outage, 2 during it and 1 after, want 3", v.Uses)
	}

	fresh := c.b.issue(t, "after-outage")
	for _, n := range nodes {
		n.mustCall(t, fresh.Secret, http.StatusOK)
	}

	c.b.warm(t, seen)
	c.a.tokengate(t, "revoke", seen.Token.ID, "--reason", "after outage")
	returned := time.Now()
	denied := waitForDeny(t, c.b, seen.Secret, "token_revoked", 5*time.Second)
	t.Logf("revoke on A after the outage enforced on B %s after the CLI returned", max(0, denied.Sub(returned)).Round(10*time.Microsecond))
}

// callAudited calls the node with the token and returns the answer and the
// call's audit line. Calls with the token must not overlap.
func (n *node) callAudited(t *testing.T, tok issued) (status int, reason string, line auditLine) {
	t.Helper()
	before := len(n.decisionsOf(t, tok.Token.ID))
	status, reason, requestID := n.call(t, tok.Secret)
	if requestID != "" {
		// A refusal names its request; its audit line may lack the token
		// id (when the token could not be looked up).
		return status, reason, n.auditLine(t, requestID)
	}
	eventually(t, 2*time.Second, "audit line of a call with "+tok.Token.ID, func() (bool, string) {
		lines := n.decisionsOf(t, tok.Token.ID)
		if len(lines) <= before {
			return false, "not written"
		}
		line = lines[before]
		return true, ""
	})
	return status, reason, line
}

// decisionsOf returns the node's audit lines of calls with the token.
func (n *node) decisionsOf(t *testing.T, tokenID string) []auditLine {
	t.Helper()
	var lines []auditLine
	for _, l := range n.auditLines(t) {
		if l.TokenID == tokenID && l.Msg == "decision" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Any node manages every token: one issued through node A's admin
// endpoint is listed, shown and revoked through node B's, and the revoke
// is enforced on A.
func TestMultiNodeManagementFromAnyNode(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	tok := c.a.issue(t, "shared")
	c.a.mustCall(t, tok.Secret, http.StatusOK)
	c.a.mustCall(t, tok.Secret, http.StatusOK)

	var listed []tokenView
	if err := json.Unmarshal([]byte(c.b.tokengate(t, "list", "--json", "--owner", "shared")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != tok.Token.ID || listed[0].State != "active" {
		t.Fatalf("list on B gives %+v, want the one active token %s", listed, tok.Token.ID)
	}
	if v := c.b.show(t, tok.Token.ID); v.ID != tok.Token.ID || v.Owner != "shared" {
		t.Fatalf("show on B gives %+v", v)
	}
	c.b.tokengate(t, "revoke", tok.Token.ID, "--reason", "revoked from node B")
	if v := c.a.show(t, tok.Token.ID); v.State != "revoked" || v.RevokedBy != "local-operator" {
		t.Errorf("show on A after revoke on B: state %s, revoked by %q", v.State, v.RevokedBy)
	}
	waitForDeny(t, c.a, tok.Secret, "token_revoked", 2*time.Second)
}

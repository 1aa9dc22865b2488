package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestManyNodesWithinTheConnectionBudget, run when TOKENGATE_MANY_NODES
// is set to a number of nodes (50 for the published run):
//
//	TOKENGATE_MANY_NODES=50 go test -count=1 -run TestManyNodesWithinTheConnectionBudget -v -timeout 30m ./cmd/caddy/
//
// starts that many real gateway nodes on one PostgreSQL, each with
// `max_conns 1` and `feed poll` (one connection per node at most), has
// every node answer calls, revokes a token every node has cached and
// checks every node refuses it, with no call answered 5xx and no node
// refused a connection ("too many clients" in its output).
//
// Not parallel: a measurement, run on its own (it skips unless asked).
func TestManyNodesWithinTheConnectionBudget(t *testing.T) {
	count, _ := strconv.Atoi(os.Getenv("TOKENGATE_MANY_NODES"))
	if count == 0 {
		t.Skip("runs with TOKENGATE_MANY_NODES=<nodes>")
	}
	db := newTestDB(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(upstream.Close)
	template := strings.Replace(nodeCaddyfile, `store postgres "{DSN}"`,
		"store postgres {\n\t\t\tdsn \"{DSN}\"\n\t\t\tmax_conns 1\n\t\t\tfeed poll\n\t\t}", 1)
	nodes := make([]*node, count)
	start := time.Now()
	for i := range nodes {
		nodes[i] = startNodeFrom(t, template, fmt.Sprintf("node-%d", i), db.dsn, upstream.URL)
	}
	t.Logf("%d nodes started in %s; %d database sessions of the test role", count, time.Since(start).Round(time.Second),
		db.count(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", db.role))
	toks := issueMany(t, nodes[0], 20)

	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			for _, tok := range toks {
				if status, reason, _ := n.call(t, tok.Secret); status != http.StatusOK {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: %d %s", n.name, status, reason))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d calls of %d failed, first: %s", len(bad), count*len(toks), bad[0])
	}
	peak := db.count(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", db.role)

	nodes[0].tokengate(t, "revoke", toks[0].Token.ID, "--reason", "many nodes")
	returned := time.Now()
	var last time.Time
	for _, n := range nodes {
		last = later(last, waitForDeny(t, n, toks[0].Secret, "token_revoked", 5*time.Second))
	}
	for _, n := range nodes {
		if strings.Contains(n.Output(), "too many clients") {
			t.Errorf("%s was refused a connection: too many clients", n.name)
		}
	}
	t.Logf("%d nodes: %d calls, %d failed; %d sessions after the calls (max_connections 100); revoke refused on every node %s after it returned (nodes polled one after another)",
		count, count*len(toks), len(bad), peak, last.Sub(returned).Round(time.Millisecond))
}

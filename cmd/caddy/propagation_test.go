package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRevocationPropagation is the published revocation figure, run only
// when TOKENGATE_PROPAGATION=1:
//
//	TOKENGATE_PROPAGATION=1 TOKENGATE_PROPAGATION_NODES=20 \
//		go test -count=1 -run TestRevocationPropagation -v -timeout 30m ./cmd/caddy/
//
// It starts NODES real gateway nodes (default 2) on one PostgreSQL and
// seeds 10,000 tokens into it: the realistic mix of the revoke-latency
// measurement (Zipf popularity, ids in paths, GET/POST/DELETE 80/15/5, 1%
// never-issued secrets, a few CIDR-bound tokens). It measures the
// cluster's peak for that mix (closed loop, 32 connections spread over the
// nodes, 5 s, after as long a warm-up), then holds LOAD of it (default 0.5, half of peak) open loop
// while it revokes REVOKES tokens (default 100) one after another through
// the CLI of one node, each after every node has answered it from its
// caches. The figure is the time from the revoke command returning until
// every node refuses the token, each node watched by its own poller: p50,
// p99 and max. RATE, when set, holds that many calls per second instead of
// a fraction of the peak.
//
// Not parallel: a measurement, run on its own (it skips unless asked).
func TestRevocationPropagation(t *testing.T) {
	if os.Getenv("TOKENGATE_PROPAGATION") != "1" {
		t.Skip("the propagation measurement runs with TOKENGATE_PROPAGATION=1")
	}
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
			return v
		}
		return def
	}
	nodes, revokes := env("TOKENGATE_PROPAGATION_NODES", 2), env("TOKENGATE_PROPAGATION_REVOKES", 100)
	fraction := envFloat(t, "TOKENGATE_PROPAGATION_LOAD", 0.5)

	db := newTestDB(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(upstream.Close)
	// Each node's pool is sized as docs/staleness.md tells an operator:
	// N × (max_conns + 1) within the database's max_connections, less its
	// superuser reserve and ten for this test and the CLI. With the
	// default pool of 4, 20 nodes would take all 100 connections of a
	// default PostgreSQL, and lookups would fail at the peak.
	budget := db.count(t, "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int") - 10
	pool := min(4, budget/nodes-1)
	if pool < 1 {
		t.Fatalf("%d nodes do not fit %d connections with a pool of 1 each", nodes, budget)
	}
	template := strings.Replace(nodeCaddyfile, `store postgres "{DSN}"`,
		fmt.Sprintf("store postgres {\n\t\t\tdsn \"{DSN}\"\n\t\t\tmax_conns %d\n\t\t}", pool), 1)
	cluster := make([]*node, nodes)
	for i := range cluster {
		cluster[i] = startNodeFrom(t, template, fmt.Sprintf("node-%d", i), db.dsn, upstream.URL)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range cluster {
				logTrouble(t, n)
			}
		}
	})
	t.Logf("%d nodes, max_conns %d each and the feed's connection: %d connections of %d", nodes, pool, nodes*(pool+1), budget)
	mix := seedMix(t, db.dsn, 10000)
	revoked := issueMany(t, cluster[0], revokes)

	mix.warmUp(t, cluster, 32, 5*time.Second)
	peak := mix.closedLoop(t, cluster, 32, 5*time.Second)
	rate := fraction * peak
	if fixed := env("TOKENGATE_PROPAGATION_RATE", 0); fixed > 0 {
		rate = float64(fixed)
	}
	t.Logf("peak of %d nodes for the mix, closed loop, 32 connections, 5 s: %.0f calls/s; holding %.0f calls/s", nodes, peak, rate)

	ctx, stop := context.WithCancel(context.Background())
	var loadDone sync.WaitGroup
	var sent, unexpected, dropped atomic.Int64
	loadDone.Go(func() { mix.openLoop(ctx, cluster, rate, 64, &sent, &unexpected, &dropped) })
	time.Sleep(2 * time.Second) // settle

	var took latencies
	loadStart, sentBefore := time.Now(), sent.Load()
	for _, tok := range revoked {
		for _, n := range cluster {
			n.mustCall(t, tok.Secret, http.StatusOK)
			n.mustCall(t, tok.Secret, http.StatusOK)
		}
		cluster[len(took)%len(cluster)].tokengate(t, "revoke", tok.Token.ID, "--reason", "propagation")
		returned := time.Now()
		took = append(took, max(0, refusedEverywhere(t, cluster, tok.Secret).Sub(returned)))
	}
	held := float64(sent.Load()-sentBefore) / time.Since(loadStart).Seconds()
	stop()
	loadDone.Wait()
	t.Logf("%d nodes, mix held at %.0f calls/s during the revokes (%.2f of peak; %d sent, %d unexpected answers, %d not sent: all 64 connections busy)",
		nodes, held, held/peak, sent.Load(), unexpected.Load(), dropped.Load())
	t.Logf("revoke returned -> refused on every node: %s", took)
	if unexpected.Load() > 0 {
		t.Errorf("%d calls of the mix got an unexpected answer: %s", unexpected.Load(), mix.oddities())
	}
}

// refusedEverywhere watches every node at once, each calling with the
// secret every millisecond, and returns when the last of them refused it.
func refusedEverywhere(t *testing.T, cluster []*node, secret string) time.Time {
	t.Helper()
	at := make([]time.Time, len(cluster))
	errs := make([]error, len(cluster))
	var wg sync.WaitGroup
	for i, n := range cluster {
		wg.Go(func() { at[i], errs[i] = firstRefusal(t, n, secret, 5*time.Second) })
	}
	wg.Wait()
	var last time.Time
	for i, a := range at {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		last = later(last, a)
	}
	return last
}

// firstRefusal is waitForDeny for a goroutine of its own: it reports
// instead of stopping the test.
func firstRefusal(t *testing.T, n *node, secret string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		status, got, _ := n.call(t, secret)
		at := time.Now()
		switch {
		case status == http.StatusUnauthorized && got == "token_revoked":
			return at, nil
		case status != http.StatusOK:
			return at, fmt.Errorf("%s answered %d %s while the revoke propagated", n.name, status, got)
		case at.After(deadline):
			return at, fmt.Errorf("%s still allows the token %s after the revoke", n.name, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// logTrouble logs a node's first few warnings and errors, so that a
// failed measurement says what the nodes saw.
func logTrouble(t *testing.T, n *node) {
	kept := 0
	for line := range strings.Lines(n.Output()) {
		if kept < 5 && (strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`)) {
			t.Logf("%s: %s", n.name, strings.TrimSpace(line))
			kept++
		}
	}
}

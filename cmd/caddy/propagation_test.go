package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRevocationPropagation is the published revocation figure, run only
// when TOKENGATE_PROPAGATION=1:
//
//	TOKENGATE_PROPAGATION=1 TOKENGATE_PROPAGATION_NODES=20 TOKENGATE_PROPAGATION_RATE=200 \
//		go test -count=1 -run TestRevocationPropagation -v -timeout 30m ./cmd/caddy/
//
// It starts NODES real gateway nodes (default 2) on one PostgreSQL, issues
// TOKENS tokens (default 200) and sends the realistic mix to all nodes at
// RATE calls per second in total (default 100): tokens drawn Zipf-like,
// ids in paths, 80% GET, 15% POST, 5% DELETE. Meanwhile it revokes
// REVOKES tokens (default 50), each after every node has answered it from
// its caches, and measures the time from the revoke command returning
// until every node refuses it: p50, p99 and max.
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
	nodes, rate := env("TOKENGATE_PROPAGATION_NODES", 2), env("TOKENGATE_PROPAGATION_RATE", 100)
	tokens, revokes := env("TOKENGATE_PROPAGATION_TOKENS", 200), env("TOKENGATE_PROPAGATION_REVOKES", 50)

	db := newTestDB(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(upstream.Close)
	cluster := make([]*node, nodes)
	for i := range cluster {
		cluster[i] = startNode(t, fmt.Sprintf("node-%d", i), db.dsn, upstream.URL)
	}
	toks := issueMany(t, cluster[0], tokens+revokes)
	background, revoked := toks[:tokens], toks[tokens:]

	// The mix, at rate calls per second across the nodes, until stop.
	stop := make(chan struct{})
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, uint64(len(background)-1))
	var zmu sync.Mutex
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			zmu.Lock()
			tok := background[zipf.Uint64()]
			zmu.Unlock()
			method := http.MethodGet
			switch r := i % 20; {
			case r == 0:
				method = http.MethodDelete
			case r <= 3:
				method = http.MethodPost
			}
			n := cluster[i%len(cluster)]
			go func() {
				req, _ := http.NewRequest(method, fmt.Sprintf("%s/svc/items/%d", n.url, i), nil)
				req.Header.Set("Authorization", "Bearer "+tok.Secret)
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil || resp.StatusCode >= 500 {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}()
		}
	})

	var took latencies
	for _, tok := range revoked {
		for _, n := range cluster {
			n.mustCall(t, tok.Secret, http.StatusOK)
			n.mustCall(t, tok.Secret, http.StatusOK)
		}
		cluster[len(took)%len(cluster)].tokengate(t, "revoke", tok.Token.ID, "--reason", "propagation")
		returned := time.Now()
		var last time.Time
		for _, n := range cluster {
			last = later(last, waitForDeny(t, n, tok.Secret, "token_revoked", 5*time.Second))
		}
		took = append(took, max(0, last.Sub(returned)))
	}
	close(stop)
	wg.Wait()
	t.Logf("%d nodes, mix at %d calls/s (%d sent, %d failed or 5xx): revoke returned -> refused on every node: %s",
		nodes, rate, sent.Load(), failed.Load(), took)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

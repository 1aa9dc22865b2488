package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store/postgres"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// TestMeasureRevokeLatencyUnderLoad is a measurement, not a check of a
// bound: two real nodes on one PostgreSQL carry a mix of API traffic (many
// tokens of Zipf popularity, ids in paths, GET/POST/DELETE, 1% unknown
// secrets, a few CIDR-bound tokens) at a fraction of the pair's peak, while
// tokens are revoked through node A's admin endpoint one after another; it
// logs how long node B, which holds each token and its allow decision in its
// caches, keeps letting it through. It runs only when asked:
//
//	TOKENGATE_MEASURE_REVOKE=1 go test ./cmd/caddy -run TestMeasureRevokeLatencyUnderLoad -v -count=1
//
// TOKENGATE_MEASURE_REVOKE_LOAD is the fraction of the measured peak to hold
// (0.5 unless set; 0 for no background traffic), TOKENGATE_MEASURE_REVOKES
// the number of revokes (100).
//
// Not parallel: a measurement, run on its own (it skips unless asked).
func TestMeasureRevokeLatencyUnderLoad(t *testing.T) {
	if os.Getenv("TOKENGATE_MEASURE_REVOKE") == "" {
		t.Skip("a measurement; set TOKENGATE_MEASURE_REVOKE=1 to run it")
	}
	fraction := envFloat(t, "TOKENGATE_MEASURE_REVOKE_LOAD", 0.5)
	revokes := int(envFloat(t, "TOKENGATE_MEASURE_REVOKES", 100))

	c := startCluster(t)
	mix := seedMix(t, c.db.dsn, 10000)
	nodes := []*node{c.a, c.b}

	peak := mix.closedLoop(t, nodes, 32, 5*time.Second)
	t.Logf("peak of the pair, closed loop, 32 connections, 5s: %.0f req/s", peak)

	ctx, stop := context.WithCancel(context.Background())
	var loadDone sync.WaitGroup
	var sent, unexpected, dropped atomic.Int64
	rate := fraction * peak
	if rate > 0 {
		loadDone.Add(1)
		go func() {
			defer loadDone.Done()
			mix.openLoop(ctx, nodes, rate, 64, &sent, &unexpected, &dropped)
		}()
		time.Sleep(2 * time.Second) // settle
	}

	toks := issueMany(t, c.a, revokes)
	var sinceReturn, sinceStart latencies
	loadStart := time.Now()
	sentBefore := sent.Load()
	for _, tok := range toks {
		c.b.mustCall(t, tok.Secret, http.StatusOK)
		c.b.mustCall(t, tok.Secret, http.StatusOK) // the second answers from B's decision cache
		start := time.Now()
		resp, err := client.Post("http://"+c.a.Admin+"/tokengate/tokens/"+tok.Token.ID+"/revoke",
			"application/json", strings.NewReader(`{"reason":"revoke latency measurement"}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		returned := time.Now()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke on A answered %d", resp.StatusCode)
		}
		denied := waitForDeny(t, c.b, tok.Secret, "token_revoked", 5*time.Second)
		sinceReturn = append(sinceReturn, max(0, denied.Sub(returned)))
		sinceStart = append(sinceStart, denied.Sub(start))
		time.Sleep(time.Duration(20+rand.IntN(30)) * time.Millisecond)
	}
	held := float64(sent.Load()-sentBefore) / time.Since(loadStart).Seconds()
	stop()
	loadDone.Wait()

	// Each revoked token's last allow on B before the revoke should have
	// been a decision-cache hit; count it from B's audit lines, read once.
	revoked := map[string]bool{}
	for _, tok := range toks {
		revoked[tok.Token.ID] = true
	}
	lastAllow := map[string]string{}
	for _, l := range c.b.auditLines(t) {
		if revoked[l.TokenID] && l.Msg == "decision" && l.Decision == "allow" {
			lastAllow[l.TokenID] = l.Cache
		}
	}
	hits := 0
	for _, cache := range lastAllow {
		if cache == "hit" {
			hits++
		}
	}

	t.Logf("background: %.2f of peak asked = %.0f req/s; held %.0f req/s during the revokes (%d sent, %d unexpected answers, %d not sent: all 64 connections busy)",
		fraction, rate, held, sent.Load(), unexpected.Load(), dropped.Load())
	t.Logf("B's last allow before the revoke was a decision-cache hit for %d of %d tokens", hits, len(toks))
	t.Logf("revoke on A -> 401 token_revoked on B, from A's answer:   %s", sinceReturn)
	t.Logf("revoke on A -> 401 token_revoked on B, from the request: %s", sinceStart)
	if unexpected.Load() > 0 {
		t.Errorf("%d calls of the background mix got an unexpected answer: %s", unexpected.Load(), mix.oddities())
	}
}

func envFloat(t *testing.T, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return f
}

// mix is the background traffic: secrets of tokens seeded straight into
// the nodes' schema, in popularity order.
type mix struct {
	all, writers, unknown []string

	// odd keeps the first few unexpected answers, so a failed run says
	// what they were.
	oddMu sync.Mutex
	odd   []string
}

// noteOdd counts an unexpected answer and keeps its description.
func (m *mix) noteOdd(unexpected *atomic.Int64, what string) {
	unexpected.Add(1)
	m.oddMu.Lock()
	defer m.oddMu.Unlock()
	if len(m.odd) < 10 {
		m.odd = append(m.odd, what)
	}
}

// oddities describes the unexpected answers kept.
func (m *mix) oddities() string {
	m.oddMu.Lock()
	defer m.oddMu.Unlock()
	return strings.Join(m.odd, "; ")
}

// seedMix writes n tokens of service svc into the database the nodes use:
// three in four may read, write and delete, one in four only read, five
// are bound to 127.0.0.0/8 (the client's address).
func seedMix(t *testing.T, dsn string, n int) *mix {
	t.Helper()
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hasher := token.NewHasher("")
	now := time.Now().UTC()
	m := &mix{}
	records := make([]*store.Token, n)
	for i := range n {
		secret := token.NewSecret()
		hash := hasher.Hash(secret)
		scopes := []string{"svc:read", "svc:write", "svc:delete"}
		if i%4 == 3 {
			scopes = []string{"svc:read"}
		} else {
			m.writers = append(m.writers, secret)
		}
		var cidrs []string
		switch i {
		case 3, 17, 120, 900, 4000:
			cidrs = []string{"10.0.0.0/8", "127.0.0.0/8"}
		}
		m.all = append(m.all, secret)
		records[i] = &store.Token{
			ID: token.NewID(), Hash: hash[:], Owner: fmt.Sprintf("team-%d", i%100), Purpose: "background mix",
			Scopes: scopes, Services: []string{"svc"}, CIDRs: cidrs,
			NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour), CreatedAt: now.Add(-time.Hour),
			CreatedBy: "bench", Version: 1,
		}
	}
	for range n / 10 {
		m.unknown = append(m.unknown, token.NewSecret())
	}
	if err := s.CreateMany(ctx, records); err != nil {
		t.Fatal(err)
	}
	return m
}

// request is one call of the mix and the status it must get.
func (m *mix) request(rng *rand.Rand, zAll, zWriters *rand.Zipf, base string) (*http.Request, int) {
	method, secret, want := http.MethodGet, m.all[zAll.Uint64()], http.StatusOK
	switch p := rng.IntN(100); {
	case p < 15:
		method, secret = http.MethodPost, m.writers[zWriters.Uint64()]
	case p < 20:
		method, secret = http.MethodDelete, m.writers[zWriters.Uint64()]
	}
	if rng.IntN(100) == 0 {
		secret, want = m.unknown[rng.IntN(len(m.unknown))], http.StatusUnauthorized
	}
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"name":"item"}`)
	}
	req, _ := http.NewRequest(method, fmt.Sprintf("%s/svc/items/%d", base, 1+rng.IntN(1000000)), body)
	req.Header.Set("Authorization", "Bearer "+secret)
	return req, want
}

// worker sends the calls it is given (or, with a nil channel, as fast as
// it can until ctx ends) and counts them.
func (m *mix) worker(ctx context.Context, seed uint64, nodes []*node, work <-chan struct{}, sent, unexpected *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	zAll := rand.NewZipf(rng, 1.1, 1, uint64(len(m.all)-1))
	zWriters := rand.NewZipf(rng, 1.1, 1, uint64(len(m.writers)-1))
	for i := 0; ; i++ {
		if work != nil {
			select {
			case <-ctx.Done():
				return
			case <-work:
			}
		} else if ctx.Err() != nil {
			return
		}
		req, want := m.request(rng, zAll, zWriters, nodes[i%len(nodes)].url)
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				m.noteOdd(unexpected, fmt.Sprintf("%s %s: %v", req.Method, req.URL.Host, err))
			}
			continue
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		sent.Add(1)
		if resp.StatusCode != want {
			m.noteOdd(unexpected, fmt.Sprintf("%s %s: %d (want %d) %s", req.Method, req.URL.Host, resp.StatusCode, want, strings.TrimSpace(string(answer))))
		}
	}
}

// closedLoop returns the nodes' throughput with conns connections, each
// sending its next call when the last one was answered.
func (m *mix) closedLoop(t *testing.T, nodes []*node, conns int, d time.Duration) float64 {
	t.Helper()
	rate, unexpected := m.run(nodes, conns, d)
	if unexpected > 0 {
		t.Fatalf("%d calls of the mix got an unexpected answer: %s", unexpected, m.oddities())
	}
	return rate
}

// warmUp runs the closed loop once with cold caches and reports what it
// saw instead of failing: many nodes on few cores, every first use a
// store lookup, can keep a lookup waiting for a pool connection past its
// deadline, and that call is answered 503 store_unavailable (failing
// closed), which a steady-state measurement is not about.
func (m *mix) warmUp(t *testing.T, nodes []*node, conns int, d time.Duration) {
	t.Helper()
	rate, unexpected := m.run(nodes, conns, d)
	t.Logf("warm-up, closed loop with cold caches, %s: %.0f calls/s, %d unexpected answers %s", d, rate, unexpected, m.oddities())
	m.oddMu.Lock()
	m.odd = nil
	m.oddMu.Unlock()
}

func (m *mix) run(nodes []*node, conns int, d time.Duration) (rate float64, unexpected int64) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var sent, odd atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		wg.Go(func() { m.worker(ctx, uint64(i), nodes, nil, &sent, &odd) })
	}
	wg.Wait()
	return float64(sent.Load()) / time.Since(start).Seconds(), odd.Load()
}

// openLoop holds rate calls per second, evenly spaced, with up to conns in
// flight; a call due while all are busy is counted as dropped.
func (m *mix) openLoop(ctx context.Context, nodes []*node, rate float64, conns int, sent, unexpected, dropped *atomic.Int64) {
	work := make(chan struct{})
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); m.worker(ctx, uint64(1000+i), nodes, work, sent, unexpected) }()
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		select {
		case work <- struct{}{}:
		default:
			dropped.Add(1)
		}
	}
	wg.Wait()
}

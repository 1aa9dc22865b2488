package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/store/postgres"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchtokens"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// The benchmarks run the real request path: a real bbolt file built by
// benchdata, the default embedded policy, the usage recorder running as in
// production. Only the HTTP handler around Authorize is missing (see
// caddymodule's handler benchmark for that).

func TestMain(m *testing.M) {
	code := m.Run()
	benchdata.Cleanup()
	os.Exit(code)
}

// newBenchGate opens f and returns a running Gate over it.
func newBenchGate(b *testing.B, f *benchdata.File, decisionCache, tokenCache int) *Gate {
	b.Helper()
	s, err := bolt.Open(f.Path, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	return newBenchGateOver(b, s, decisionCache, tokenCache, nil)
}

// newPostgresBenchGate returns a running Gate over the PostgreSQL schema
// sch, with the decision cache off and a one-entry token cache. Without
// usageWrites the usage recorder's batches are dropped, not written. The
// Gate adds the time of its lookups and policy evaluations to t.
func newPostgresBenchGate(b *testing.B, sch *benchdata.Schema, usageWrites bool, t *stageTimes) *Gate {
	b.Helper()
	ps, err := postgres.Open(context.Background(), sch.DSN)
	if err != nil {
		b.Fatal(err)
	}
	var s store.Store = ps
	if !usageWrites {
		s = noUsageWrites{ps}
	}
	return newBenchGateOver(b, s, 0, 1, func(o *Options) {
		o.ObserveStore = func(op string, d time.Duration) {
			if op == "get_by_hash" {
				t.lookup += d
			}
		}
		o.ObservePolicy = func(d time.Duration) { t.policy += d }
	})
}

// stageTimes adds up the time Authorize spent in two of its stages. Only
// the benchmark goroutine calls GetByHash and the policy.
type stageTimes struct{ lookup, policy time.Duration }

// report reports the stages per iteration: the lookup is the round trip
// to the store as the Gate's caller sees it.
func (t *stageTimes) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(t.lookup.Nanoseconds())/float64(b.N), "lookup-ns/op")
		b.ReportMetric(float64(t.policy.Nanoseconds())/float64(b.N), "policy-ns/op")
	}
}

// newBenchGateOver returns a running Gate over s, and closes s when the
// benchmark ends. options, when not nil, may set more Options.
func newBenchGateOver(b *testing.B, s store.Store, decisionCache, tokenCache int, options func(*Options)) *Gate {
	b.Helper()
	engine, err := policy.NewEngine(policies.FS)
	if err != nil {
		b.Fatal(err)
	}
	o := Options{
		Store:             s,
		Policy:            engine,
		Hasher:            token.NewHasher(""),
		DecisionCacheSize: decisionCache,
		TokenCacheSize:    tokenCache,
	}
	if options != nil {
		options(&o)
	}
	g, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		g.Run(ctx)
		close(done)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		g.Close()
		s.Close()
	})
	return g
}

// benchSizes are the store sizes: 1,000 and 100,000 tokens, plus
// TOKENGATE_BENCH_LARGE when set (1000000 takes about a minute to build).
func benchSizes(b *testing.B) []int {
	sizes := []int{1000, 100000}
	if v := os.Getenv("TOKENGATE_BENCH_LARGE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("TOKENGATE_BENCH_LARGE=%q: %v", v, err)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

func benchCall(secret, path string) *Call {
	return &Call{
		Secret:  secret,
		Service: benchtokens.Service,
		Request: policy.Request{Method: "GET", Host: "api.example.com", Path: path, RemoteIP: "127.0.0.1"},
	}
}

func mustAllow(b *testing.B, res Result, cache string) {
	if res.Outcome != Allow || res.Cache != cache {
		b.Fatalf("got %s (cache %s, reasons %v, err %v), want allow (cache %s)", res.Outcome, res.Cache, res.Reasons(), res.Err, cache)
	}
}

// BenchmarkAuthorize measures Authorize alone.
//
//   - cached: one token, the same call again and again: a token-cache hit
//     and a decision-cache hit. Target <= 2 µs and <= 10 allocations for the
//     whole handler, so this must be well below.
//   - uncached: decision cache off, token cache warm: the policy runs for
//     every call. Target <= 25 µs.
//   - miss: decision cache on, a token bound to 10.0.0.0/8 calling from a
//     new address of it each time (the shipped policy keys on the address
//     for such tokens, and not on the path): a miss, the policy, and a
//     decision-cache insert.
//   - cold/tokens=N: decision cache off and a one-entry token cache, a random
//     token of N per call: every call reads the bbolt file, decodes the
//     record, builds its input term and runs the policy. The issue asks that
//     going from 1,000 to many more tokens costs at most 1.5x. N: see
//     benchSizes.
//   - cold-postgres/tokens=N: the same over a PostgreSQL store (see
//     benchdata.PostgresSchema) of 1,000 and 100,000 tokens (and
//     TOKENGATE_BENCH_LARGE, see benchSizes): every call is
//     a query to the database, and the usage recorder's batched UPDATEs go
//     there too (one row per distinct token in a batch, so more of them
//     with more tokens). cold-postgres/no-usage-writes/tokens=N drops those
//     batches, to tell the lookup and the policy apart from the write-back
//     running beside them. Skipped when PostgreSQL is unreachable, failed
//     then under CI=true.
func BenchmarkAuthorize(b *testing.B) {
	ctx := context.Background()
	small := benchdata.BoltFile(b, 1000)

	b.Run("cached", func(b *testing.B) {
		g := newBenchGate(b, small, 100000, 0)
		c := benchCall(small.Secrets[0], "/billing/invoices")
		// ristretto admits new entries asynchronously.
		for g.Authorize(ctx, c).Cache != CacheHit {
			time.Sleep(time.Millisecond)
		}
		b.ReportAllocs()
		defer benchdata.MeasureCPU(b)()
		for b.Loop() {
			mustAllow(b, g.Authorize(ctx, c), CacheHit)
		}
	})

	b.Run("uncached", func(b *testing.B) {
		g := newBenchGate(b, small, 0, 0)
		c := benchCall(small.Secrets[0], "/billing/invoices")
		b.ReportAllocs()
		defer benchdata.MeasureCPU(b)()
		for b.Loop() {
			mustAllow(b, g.Authorize(ctx, c), CacheNone)
		}
	})

	b.Run("miss", func(b *testing.B) {
		g, secret := newCIDRBenchGate(b, "10.0.0.0/8")
		// A new client address per call, built here like a request brings
		// one: one of the allocations counted is this string.
		c := benchCall(secret, "/billing/invoices")
		ip := []byte("10.")
		prefix := len(ip)
		i := 0
		b.ReportAllocs()
		defer benchdata.MeasureCPU(b)()
		for b.Loop() {
			ip = strconv.AppendInt(ip[:prefix], int64(i>>16&255), 10)
			ip = append(ip, '.')
			ip = strconv.AppendInt(ip, int64(i>>8&255), 10)
			ip = append(ip, '.')
			ip = strconv.AppendInt(ip, int64(i&255), 10)
			c.Request.RemoteIP = string(ip)
			mustAllow(b, g.Authorize(ctx, c), CacheMiss)
			i++
		}
	})

	for _, n := range benchSizes(b) {
		f := benchdata.BoltFile(b, n)
		b.Run(fmt.Sprintf("cold/tokens=%d", n), func(b *testing.B) {
			g := newBenchGate(b, f, 0, 1)
			c := benchCall("", "/billing/invoices")
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			for b.Loop() {
				c.Secret = f.Secrets[rng.IntN(len(f.Secrets))]
				mustAllow(b, g.Authorize(ctx, c), CacheNone)
			}
		})
	}

	b.Run("cold-postgres", func(b *testing.B) {
		// Both schemas are seeded before either is measured, so that
		// neither is measured right after the other's seeding and -count
		// repeats only the measurement. TOKENGATE_BENCH_LARGE adds a size
		// here too (1000000 takes a few minutes to seed).
		sizes := benchSizes(b)
		schemas := make([]*benchdata.Schema, len(sizes))
		for i, n := range sizes {
			schemas[i] = benchdata.PostgresSchema(b, n)
		}
		for _, usage := range []bool{true, false} {
			for i, n := range sizes {
				sch := schemas[i]
				name := fmt.Sprintf("tokens=%d", n)
				if !usage {
					name = "no-usage-writes/" + name
				}
				b.Run(name, func(b *testing.B) {
					var t stageTimes
					g := newPostgresBenchGate(b, sch, usage, &t)
					c := benchCall("", "/billing/invoices")
					rng := rand.New(rand.NewPCG(1, 2))
					b.ReportAllocs()
					defer t.report(b)
					defer benchdata.MeasureCPU(b)()
					for b.Loop() {
						c.Secret = sch.Secrets[rng.IntN(len(sch.Secrets))]
						mustAllow(b, g.Authorize(ctx, c), CacheNone)
					}
				})
			}
		}
	})
}

// newCIDRBenchGate returns a gate (decision cache on) over a fresh bbolt
// file holding one read token of the bench service bound to cidr, and the
// token's secret.
func newCIDRBenchGate(b *testing.B, cidr string) (*Gate, string) {
	b.Helper()
	s, err := bolt.Open(filepath.Join(b.TempDir(), "cidr.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	secret := token.NewSecret()
	hash := token.NewHasher("").Hash(secret)
	now := time.Now()
	if err := s.Create(context.Background(), &store.Token{
		ID: token.NewID(), Hash: hash[:], Owner: "bench", Purpose: "bench",
		Scopes: []string{benchtokens.Service + ":read"}, Services: []string{benchtokens.Service}, CIDRs: []string{cidr},
		NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour), CreatedAt: now, CreatedBy: "bench",
	}); err != nil {
		b.Fatal(err)
	}
	return newBenchGateOver(b, s, 100000, 0, nil), secret
}

// noUsageWrites drops the usage recorder's batches instead of writing them.
type noUsageWrites struct{ store.Store }

func (noUsageWrites) RecordUsage(context.Context, []store.Usage) error { return nil }

// BenchmarkDistinctTokens sends every call with the next of N tokens, with
// the production cache sizes (10,000 tokens, 100,000 decisions): once N is
// past the token cache, nearly every call misses both caches. It reports
// how much the live heap grew from before the Gate existed to after the
// run (both after a GC): the cache bounds must keep that flat however many
// distinct tokens pass. Run it with -benchtime 100000x or more, so that
// every token is used.
func BenchmarkDistinctTokens(b *testing.B) {
	ctx := context.Background()
	for _, n := range benchSizes(b) {
		f := benchdata.BoltFile(b, n)
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			before := liveHeap()
			g := newBenchGate(b, f, 100000, 0)
			c := benchCall("", "/billing/invoices")
			i := 0
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			for b.Loop() {
				c.Secret = f.Secrets[i%len(f.Secrets)]
				if res := g.Authorize(ctx, c); res.Outcome != Allow {
					b.Fatalf("got %s %v", res.Outcome, res.Reasons())
				}
				i++
			}
			b.ReportMetric(float64(liveHeap()-before)/(1<<20), "heap-growth-MB")
			b.ReportMetric(float64(min(i, len(f.Secrets))), "distinct-tokens")
		})
	}
}

func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkUnknownFlood sends well-formed tokens that no store holds,
// cycling through 100,000 distinct ones, at a gate over PostgreSQL (1,000
// real tokens), and reports how many store lookups each call cost. With
// a one-entry memory (which never hits while 100,000 tokens cycle: the
// path before unknown hashes were remembered) every call is a round trip;
// with the default memory each distinct token costs one. Run with
// -benchtime 300000x (three passes).
func BenchmarkUnknownFlood(b *testing.B) {
	ctx := context.Background()
	sch := benchdata.PostgresSchema(b, 1000)
	unknown := make([]string, 100000)
	for i := range unknown {
		unknown[i] = token.NewSecret()
	}
	for _, memory := range []int{1, DefaultUnknownCacheSize} {
		b.Run(fmt.Sprintf("memory=%d", memory), func(b *testing.B) {
			var lookups int
			var t stageTimes
			g := newPostgresBenchGate(b, sch, false, &t)
			g.store = lookupCounter{Store: g.store, n: &lookups}
			g.unknown.Resize(memory)
			c := benchCall("", "/billing/invoices")
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				c.Secret = unknown[i%len(unknown)]
				if res := g.Authorize(ctx, c); res.Outcome != Deny {
					b.Fatalf("got %s %v", res.Outcome, res.Reasons())
				}
				i++
			}
			b.ReportMetric(float64(lookups), "store-lookups")
			b.ReportMetric(float64(lookups)/float64(i), "lookups/call")
		})
	}
}

// lookupCounter counts GetByHash calls; only the benchmark goroutine
// calls it.
type lookupCounter struct {
	store.Store
	n *int
}

func (s lookupCounter) GetByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	*s.n++
	return s.Store.GetByHash(ctx, hash)
}

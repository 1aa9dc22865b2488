package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/store/postgres"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchtokens"
)

// The benchmarks live in package postgres_test because benchdata imports
// package postgres.

func TestMain(m *testing.M) {
	code := m.Run()
	benchdata.Cleanup()
	os.Exit(code)
}

// BenchmarkGetByHash looks up random tokens by secret hash, as the gateway
// does on a token-cache miss: one query on a pooled connection, a unique
// index lookup, one row scanned. The schemas are seeded once per process
// with CreateMany (issue 5 asks for 100,000 tokens in PostgreSQL). ns/op is
// the round trip; cpu-ns/op counts this process only, not the server.
func BenchmarkGetByHash(b *testing.B) {
	// Both schemas are seeded before either is measured (and before the
	// sub-benchmarks, so that -count repeats only the measurement).
	sizes := []int{1000, 100000}
	schemas := make([]*benchdata.Schema, len(sizes))
	for i, n := range sizes {
		schemas[i] = benchdata.PostgresSchema(b, n)
	}
	for i, n := range sizes {
		sch := schemas[i]
		hashes := benchtokens.Hashes(sch.Secrets)
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, err := postgres.Open(ctx, sch.DSN)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			for b.Loop() {
				if _, err := s.GetByHash(ctx, hashes[rng.IntN(len(hashes))]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

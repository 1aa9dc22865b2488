package bolt_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchtokens"
)

func TestMain(m *testing.M) {
	code := m.Run()
	benchdata.Cleanup()
	os.Exit(code)
}

// benchSizes are the store sizes lookups are measured at. The issue asks
// for 1,000 and 1,000,000; TOKENGATE_BENCH_LARGE overrides the large one.
func benchSizes() []int {
	large := 1_000_000
	if v := os.Getenv("TOKENGATE_BENCH_LARGE"); v != "" {
		fmt.Sscan(v, &large)
	}
	return []int{1000, large}
}

// BenchmarkGetByHash looks up random tokens by secret hash, as the gateway
// does on a token-cache miss: one read transaction, two B+tree lookups and
// a JSON decode.
func BenchmarkGetByHash(b *testing.B) {
	for _, n := range benchSizes() {
		f := benchdata.BoltFile(b, n)
		hashes := benchtokens.Hashes(f.Secrets)
		s, err := bolt.Open(f.Path, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			for b.Loop() {
				if _, err := s.GetByHash(ctx, hashes[rng.IntN(len(hashes))]); err != nil {
					b.Fatal(err)
				}
			}
		})
		s.Close()
	}
}

package gateway

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
	"github.com/tokengate/caddy-tokengate/policies"
)

// BenchmarkAuthorizeRateLimited is BenchmarkAuthorize/cached with and
// without a rate limit on the call (the policy's, never reached), so the
// difference is what the limiter adds to an allowed call: run both in one
// process, interleaved by -count, and compare.
func BenchmarkAuthorizeRateLimited(b *testing.B) {
	ctx := context.Background()
	small := benchdata.BoltFile(b, 1000)
	for name, rule := range map[string]string{
		"unlimited": "",
		"limited":   `rate_limit := {"requests": 1000000000, "window": "1h"}`,
	} {
		b.Run(name, func(b *testing.B) {
			gw, err := policies.FS.ReadFile("gateway.rego")
			if err != nil {
				b.Fatal(err)
			}
			engine, err := policy.NewEngine(fstest.MapFS{
				"gateway.rego": {Data: gw},
				"rate.rego":    {Data: []byte("package tokengate.gateway\n\n" + rule + "\n")},
			})
			if err != nil {
				b.Fatal(err)
			}
			s, err := bolt.Open(small.Path, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			g := newBenchGateOver(b, s, 100000, 0, func(o *Options) { o.Policy = engine })
			c := benchCall(small.Secrets[0], "/billing/invoices")
			for g.Authorize(ctx, c).Cache != CacheHit {
				time.Sleep(time.Millisecond)
			}
			if limited := !g.Authorize(ctx, c).RateLimit.Limit.IsZero(); limited != (rule != "") {
				b.Fatalf("the call is rate-limited: %v, want %v", limited, rule != "")
			}
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			for b.Loop() {
				mustAllow(b, g.Authorize(ctx, c), CacheHit)
			}
		})
	}
}

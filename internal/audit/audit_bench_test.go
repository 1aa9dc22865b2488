package audit

import (
	"io"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
)

func benchCall() *Call {
	return &Call{
		Decision: "allow", Reasons: []string{}, Status: 200,
		TokenID: "tok_4bd073c5391439a5a75b", Owner: "team-7", Purpose: "nightly invoice export",
		Scopes: []string{"billing:read", "billing:write"}, Service: "billing",
		ClientIP: "192.0.2.10", Method: "GET", Host: "api.example.com", Path: "/billing/invoices",
		RequestID: "4f2b8a0e-3c2d-4a51-9b7e-5d1f0c9e8a72", DecisionID: "dec_Xy7pQ2mN9vR4sT1uW3zA",
		Duration: 1234 * time.Microsecond, Cache: "hit", PolicyRev: "a6dd96411025",
	}
}

// BenchmarkCall encodes one gateway call line with zap's JSON encoder (what
// Caddy's `format json` wraps) to a writer that discards it: the cost of an
// audit line without the cost of the file.
func BenchmarkCall(b *testing.B) {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	l := New(zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel)).Named(LoggerName))
	c := benchCall()
	b.ReportAllocs()
	defer benchdata.MeasureCPU(b)()
	for b.Loop() {
		l.Call(c)
	}
}

// BenchmarkCallDisabled is the same call when no log includes the audit
// logger.
func BenchmarkCallDisabled(b *testing.B) {
	l := New(zap.NewNop())
	c := benchCall()
	b.ReportAllocs()
	defer benchdata.MeasureCPU(b)()
	for b.Loop() {
		l.Call(c)
	}
}

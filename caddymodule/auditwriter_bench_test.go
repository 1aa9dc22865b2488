package caddymodule

import (
	"encoding/base64"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/auditlog"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
)

// BenchmarkAuditFile writes gateway call lines through zap's JSON encoder
// (what Caddy's `format json` wraps) into a file in the test's temporary
// folder: with Caddy's file writer (`output file`, rolling on and rolled
// files gzipped, as by default; and with `roll_compression none`, since the
// gzip of the file rolled at 100 MiB, some 200,000 lines in, runs within
// a longer run) and with tokengate_audit (a look at the file and the path every
// millisecond, a leaf hash per line, a signed checkpoint every 1000
// lines). Target: tokengate_audit at least 0.9 x Caddy's lines/s. One
// goroutine writes, as zap serialises writes to one file anyway.
func BenchmarkAuditFile(b *testing.B) {
	call := &audit.Call{
		Decision: "allow", Reasons: []string{}, Status: 200,
		TokenID: "tok_4bd073c5391439a5a75b", Owner: "team-7", Purpose: "nightly invoice export",
		Scopes: []string{"billing:read", "billing:write"}, Service: "billing",
		ClientIP: "192.0.2.10", Method: "GET", Host: "api.example.com", Path: "/billing/invoices/inv_8812",
		RequestID: "4f2b8a0e-3c2d-4a51-9b7e-5d1f0c9e8a72", DecisionID: "dec_Xy7pQ2mN9vR4sT1uW3zA",
		Duration: 1234 * time.Microsecond, Cache: "hit", PolicyRev: "a6dd96411025",
	}
	open := map[string]func(path string) (io.WriteCloser, error){
		"writer=caddy-file": func(path string) (io.WriteCloser, error) {
			return logging.FileWriter{Filename: path}.OpenWriter()
		},
		"writer=caddy-file-uncompressed": func(path string) (io.WriteCloser, error) {
			return logging.FileWriter{Filename: path, RollCompression: "none"}.OpenWriter()
		},
		"writer=tokengate_audit": func(path string) (io.WriteCloser, error) {
			key, err := auditlog.ParseKey(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
			if err != nil {
				return nil, err
			}
			return auditlog.Open(auditlog.Options{Path: path, Key: key, Roll: auditlog.Roll{Size: 100 << 20}})
		},
	}
	for _, name := range []string{"writer=caddy-file", "writer=caddy-file-uncompressed", "writer=tokengate_audit"} {
		b.Run(name, func(b *testing.B) {
			w, err := open[name](filepath.Join(b.TempDir(), "audit.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
			l := audit.New(zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zapcore.InfoLevel)).Named(audit.LoggerName))
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			start := time.Now()
			for b.Loop() {
				l.Call(call)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
			if !l.Health().Healthy() {
				b.Fatalf("writes failed: %v", l.Health().Err())
			}
		})
	}
}

package caddymodule

import (
	"encoding/base64"
	"io"
	"path/filepath"
	"strconv"
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
	open := auditWriters()
	for _, name := range []string{"writer=caddy-file", "writer=caddy-file-uncompressed", "writer=tokengate_audit"} {
		b.Run(name, func(b *testing.B) {
			w, err := open[name](filepath.Join(b.TempDir(), "audit.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			l := auditLoggerTo(w)
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			start := time.Now()
			for b.Loop() {
				l.Call(benchCall)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
			if !l.Health().Healthy() {
				b.Fatalf("writes failed: %v", l.Health().Err())
			}
		})
	}
}

// BenchmarkAuditFileAlternating writes the same lines as BenchmarkAuditFile
// to Caddy's file writer and to tokengate_audit in turn, one line each,
// first one then the other, timing each write. On a machine shared with
// other work the two writers then see the same load, which separate runs
// seconds apart do not: the ratio is steadier than the lines/s of
// BenchmarkAuditFile. Reported: each writer's wall time a line, and
// x-caddy, tokengate_audit's lines/s as a multiple of Caddy's.
func BenchmarkAuditFileAlternating(b *testing.B) {
	open := auditWriters()
	var loggers [2]*audit.Logger
	for i, name := range []string{"writer=caddy-file", "writer=tokengate_audit"} {
		w, err := open[name](filepath.Join(b.TempDir(), strconv.Itoa(i), "audit.log"))
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		loggers[i] = auditLoggerTo(w)
	}
	var spent [2]time.Duration
	i := 0
	for b.Loop() {
		first := i & 1
		for _, k := range []int{first, 1 - first} {
			start := time.Now()
			loggers[k].Call(benchCall)
			spent[k] += time.Since(start)
		}
		i++
	}
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(b.N), "caddy-ns/line")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(b.N), "tokengate_audit-ns/line")
	b.ReportMetric(float64(spent[0])/float64(spent[1]), "x-caddy")
	for _, l := range loggers {
		if !l.Health().Healthy() {
			b.Fatalf("writes failed: %v", l.Health().Err())
		}
	}
}

// benchCall is an allowed gateway call, as the audit line of one is.
var benchCall = &audit.Call{
	Decision: "allow", Reasons: []string{}, Status: 200,
	TokenID: "tok_4bd073c5391439a5a75b", Owner: "team-7", Purpose: "nightly invoice export",
	Scopes: []string{"billing:read", "billing:write"}, Service: "billing",
	ClientIP: "192.0.2.10", Method: "GET", Host: "api.example.com", Path: "/billing/invoices/inv_8812",
	RequestID: "4f2b8a0e-3c2d-4a51-9b7e-5d1f0c9e8a72", DecisionID: "dec_Xy7pQ2mN9vR4sT1uW3zA",
	Duration: 1234 * time.Microsecond, Cache: "hit", PolicyRev: "a6dd96411025",
}

// auditLoggerTo is the gateway's audit logger writing JSON lines to w
// through zap, as Caddy's `format json` does.
func auditLoggerTo(w io.Writer) *audit.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return audit.New(zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zapcore.InfoLevel)).Named(audit.LoggerName))
}

// auditWriters opens each writer the benchmarks compare.
func auditWriters() map[string]func(path string) (io.WriteCloser, error) {
	return map[string]func(path string) (io.WriteCloser, error){
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
}

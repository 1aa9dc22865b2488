package auditlog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
)

// BenchmarkWrite writes one gateway call line (about 520 bytes) at a time
// to a file opened as the Writer opens it (file) and through the Writer
// (writer), so that the difference is the Writer's own cost without zap's
// encoding: the look every millisecond, the kept lines, the hashing and
// the checkpoints. caddymodule's BenchmarkAuditFile compares the whole
// path against Caddy's file writer.
func BenchmarkWrite(b *testing.B) {
	line := []byte(`{"level":"info","ts":1796600000.123456,"logger":"tokengate.audit","msg":"decision","schema":2,"decision":"allow","reasons":[],"status":200,"token_id":"tok_4bd073c5391439a5a75b","owner":"team-7","purpose":"nightly invoice export","scopes":["billing:read","billing:write"],"service":"billing","client_ip":"192.0.2.10","method":"GET","host":"api.example.com","path":"/billing/invoices/inv_8812","request_id":"4f2b8a0e-3c2d-4a51-9b7e-5d1f0c9e8a72","decision_id":"dec_Xy7pQ2mN9vR4sT1uW3zA","duration":0.001234,"cache":"hit","policy_rev":"a6dd96411025"}` + "\n")
	b.Run("to=file", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "audit.log"), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.ReportAllocs()
		defer benchdata.MeasureCPU(b)()
		for b.Loop() {
			if _, err := f.Write(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("to=writer", func(b *testing.B) {
		w, err := Open(Options{Path: filepath.Join(b.TempDir(), "audit.log"), Key: testKey(b, 1), Roll: Roll{Size: 100 << 20}})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		b.ReportAllocs()
		defer benchdata.MeasureCPU(b)()
		for b.Loop() {
			if _, err := w.Write(line); err != nil {
				b.Fatal(err)
			}
		}
	})
}

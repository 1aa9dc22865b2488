package auditlog

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkVerifyMillion verifies an audit file of 1,000,000 realistic
// lines (about 480 bytes each, as the gateway writes them) with its
// checkpoints, as `caddy tokengate audit verify` does. The file is written
// once, through the Writer, before the timer starts. Run it alone:
//
//	go test ./internal/auditlog -run XXX -bench VerifyMillion -benchtime 1x
func BenchmarkVerifyMillion(b *testing.B) {
	const lines = 1_000_000
	path := filepath.Join(b.TempDir(), "audit.log")
	key := testKey(b, 1)
	w, err := Open(Options{Path: path, Key: key, CheckpointEvery: 1 << 62})
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(`{"level":"info","ts":1796600000.123456,"logger":"tokengate.audit","msg":"decision","schema":2,"decision":"allow","reasons":[],"status":200,"token_id":"tok_4bd073c5391439a5a75b","owner":"team-7","held_by":"alice","purpose":"nightly invoice export","scopes":["billing:read","billing:write"],"service":"billing","client_ip":"192.0.2.10","method":"GET","host":"api.example.com","path":"/billing/invoices/inv_`)
	for i := range lines {
		l := strconv.AppendInt(line[:len(line):len(line)], int64(i), 10)
		l = append(l, `","request_id":"4f2b8a0e-3c2d-4a51-9b7e-5d1f0c9e8a72","decision_id":"dec_Xy7pQ2mN9vR4sT1uW3zA","duration":0.001234,"cache":"hit","policy_rev":"a6dd96411025"}`+"\n"...)
		if _, err := w.Write(l); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(path)
	v := verifier(b, key)
	b.ResetTimer()
	for b.Loop() {
		res, err := Verify([]string{path}, []string{path + ".checkpoints"}, v)
		if err != nil || res.Lines != lines {
			b.Fatalf("verify: %+v %v", res, err)
		}
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
}

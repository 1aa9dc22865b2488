package auditlog

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestTreeMatchesTlog checks the right-edge tree against tlog's own RFC
// 6962 tree hash at every size up to 300.
func TestTreeMatchesTlog(t *testing.T) {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var tr tree
	leaf := newLeafHasher()
	for n := int64(0); n < 300; n++ {
		data := []byte(fmt.Sprintf(`{"line":%d}`, n))
		hashes, err := tlog.StoredHashes(n, data, reader)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hashes...)
		if leaf.hash(data) != tlog.RecordHash(data) {
			t.Fatalf("leaf %d: leafHasher and tlog.RecordHash differ", n)
		}
		tr.add(leaf.hash(data))
		want, err := tlog.TreeHash(n+1, reader)
		if err != nil {
			t.Fatal(err)
		}
		if tr.root() != want {
			t.Fatalf("size %d: root %v, tlog says %v", n+1, tr.root(), want)
		}
		if !validFrontier(tr.size, tr.frontier) {
			t.Fatalf("size %d: %d frontier hashes", tr.size, len(tr.frontier))
		}
	}
}

package auditlog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// proveAndCheck proves lines from..to of file against the checkpoints
// beside it, checks each proof, and returns them.
func proveAndCheck(t *testing.T, key *Key, file string, from, to int) []*Proof {
	t.Helper()
	var proofs []*Proof
	for n := from; n <= to; n++ {
		p, err := Prove(file, n, []string{file + ".checkpoints"}, verifier(t, key))
		if err != nil {
			t.Fatalf("prove %s line %d: %v", file, n, err)
		}
		// Through JSON, as the command hands it on.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p, err = ReadProof(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckProof(p, verifier(t, key)); err != nil {
			t.Fatalf("proof of %s line %d does not check: %v", file, n, err)
		}
		proofs = append(proofs, p)
	}
	return proofs
}

func TestProveChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key, MaxLines: 7})
	writeLines(t, w, "a", 23)
	w.Checkpoint()
	proofs := proveAndCheck(t, key, path, 1, 23)
	if p := proofs[4]; p.Index != 4 || !bytes.Contains([]byte(p.Record), []byte(`"path":"/a/4"`)) {
		t.Fatalf("proof of line 5 is of leaf %d, record %q", p.Index, p.Record)
	}
	if len(proofs[4].Hashes) != 5 {
		t.Fatalf("proof of a line in a tree of 23 has %d hashes, want 5 (the newest checkpoint, 23 lines)", len(proofs[4].Hashes))
	}
}

func TestProveRejectsChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key})
	writeLines(t, w, "a", 12)
	w.Checkpoint()
	good := proveAndCheck(t, key, path, 1, 12)[5]

	changed := *good
	changed.Record = string(bytes.Replace([]byte(good.Record), []byte("/a/5"), []byte("/a/6"), 1))
	expectFailure(t, CheckProof(&changed, verifier(t, key)), "is not the line the checkpoint signed")

	moved := *good
	moved.Index = 6
	expectFailure(t, CheckProof(&moved, verifier(t, key)), "is not the line the checkpoint signed")

	expectFailure(t, CheckProof(good, verifier(t, testKey(t, 2))), "does not verify with key")

	// A line changed in the file: Prove refuses to prove it.
	editLines(t, path, func(lines [][]byte) [][]byte {
		lines[5] = bytes.Replace(lines[5], []byte("/a/5"), []byte("/a/6"), 1)
		return lines
	})
	_, err := Prove(path, 6, []string{path + ".checkpoints"}, verifier(t, key))
	expectFailure(t, err, "does not match checkpoint")
}

// A file that continues a tree (its predecessor was deleted here) proves
// its lines on its own, from the hashes of its continues line.
func TestProveContinuedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key})
	writeLines(t, w, "before", 13)
	w.Checkpoint() // the 13 lines are leaves of the file deleted next
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, "after", 6)
	w.Checkpoint()
	if n := countLines(t, path); n != 7 {
		t.Fatalf("new file has %d lines, want a continues line and 6", n)
	}
	_, err := Prove(path, 1, []string{path + ".checkpoints"}, verifier(t, key))
	expectFailure(t, err, "is a continues line")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The lines written into the deleted file after its last look count
	// only where they were written again.
	start, ok, err := parseContinues(data[:bytes.IndexByte(data, '\n')])
	if !ok || err != nil || start.size != 13 {
		t.Fatalf("continues line %v %v says %d lines before, want 13", ok, err, start.size)
	}
	for i, p := range proveAndCheck(t, key, path, 2, 7) {
		if p.Index != start.size+int64(i) {
			t.Fatalf("line %d of the new file is leaf %d, want %d", i+2, p.Index, start.size+int64(i))
		}
	}
}

func TestProveUncovered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key})
	writeLines(t, w, "a", 3)
	w.Checkpoint()
	writeLines(t, w, "b", 2)
	_, err := Prove(path, 5, []string{path + ".checkpoints"}, verifier(t, key))
	expectFailure(t, err, "no checkpoint")
	_, err = Prove(path, 9, []string{path + ".checkpoints"}, verifier(t, key))
	expectFailure(t, err, "has no line 9")
}

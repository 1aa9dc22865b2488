package auditlog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Proof shows that one audit line is in the tree a signed checkpoint
// covers, without the other lines: whoever holds the verifier key checks
// it offline with CheckProof. It is JSON, so it can be mailed or filed.
type Proof struct {
	File string `json:"file"`
	Line int    `json:"line"` // 1-based, in File
	// Record is the audit line itself, without its newline.
	Record string `json:"record"`
	Index  int64  `json:"index"` // the line's leaf number in the tree, 0-based
	// Checkpoint is the signed note (tree size and root) the proof leads to.
	Checkpoint string      `json:"checkpoint"`
	Hashes     []tlog.Hash `json:"hashes"` // tlog.RecordProof, base64 each
}

// Prove builds the inclusion proof of line lineNo (1-based) of file
// against the newest checkpoint in checkpointFiles that covers it and the
// file reaches. A file that continues a tree from earlier files is proved
// on its own: its continues line carries the hashes of those files.
func Prove(file string, lineNo int, checkpointFiles []string, v note.Verifier) (*Proof, error) {
	if lineNo < 1 {
		return nil, fmt.Errorf("line %d: lines are numbered from 1", lineNo)
	}
	points, err := readCheckpoints(checkpointFiles, v)
	if err != nil {
		return nil, err
	}
	hashes, index, record, err := fileHashes(file, lineNo)
	if err != nil {
		return nil, err
	}
	// The newest checkpoint the file reaches: its root can be recomputed
	// from the file, and it proves the line if it is past it.
	var point *signedPoint
	for i := range points {
		if points[i].size > index && points[i].size <= hashes.size {
			point = &points[i]
		}
	}
	if point == nil {
		return nil, failf("%s line %d: no checkpoint signed by %s covers it yet (checkpoints are signed every second and on close)", file, lineNo, v.Name())
	}
	root, err := tlog.TreeHash(point.size, hashes)
	if err != nil {
		return nil, err
	}
	if root != point.root {
		return nil, failf("%s does not match checkpoint %s: run audit verify to find the line that differs", file, point.source)
	}
	rp, err := tlog.ProveRecord(point.size, index, hashes)
	if err != nil {
		return nil, err
	}
	return &Proof{File: file, Line: lineNo, Record: string(record), Index: index, Checkpoint: point.note, Hashes: rp}, nil
}

// CheckProof checks that p.Record is leaf p.Index of the tree whose
// checkpoint v signed. It returns a *Failure when the record, the proof or
// the checkpoint was changed.
func CheckProof(p *Proof, v note.Verifier) error {
	size, root, err := openCheckpoint(p.Checkpoint, v)
	if err != nil {
		return failf("the proof's checkpoint does not verify with key %s: %v", v.Name(), err)
	}
	if p.Index < 0 || p.Index >= size {
		return failf("the proof names line %d of the tree, but its checkpoint covers %d lines", p.Index, size)
	}
	if err := tlog.CheckRecord(p.Hashes, size, root, p.Index, newLeafHasher().hash([]byte(p.Record))); err != nil {
		return failf("%s line %d is not the line the checkpoint signed: %v", p.File, p.Line, err)
	}
	return nil
}

// ReadProof reads a proof as Prove's JSON.
func ReadProof(r io.Reader) (*Proof, error) {
	var p Proof
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return nil, fmt.Errorf("not an audit proof: %v", err)
	}
	return &p, nil
}

// storedHashes holds every hash tlog stores for a tree (leaves and
// complete subtrees), keyed by tlog.StoredHashIndex. A file that continues
// a tree holds only the roots of the subtrees before it, which is all that
// tlog asks for to prove a line of this file.
type storedHashes struct {
	size   int64
	hashes map[int64]tlog.Hash
}

func (s *storedHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := s.hashes[x]
		if !ok {
			return nil, errors.New("the proof needs lines of an earlier file")
		}
		out[i] = h
	}
	return out, nil
}

func (s *storedHashes) add(leaf tlog.Hash) error {
	more, err := tlog.StoredHashesForRecordHash(s.size, leaf, s)
	if err != nil {
		return err
	}
	base := tlog.StoredHashIndex(0, s.size)
	for i, h := range more {
		s.hashes[base+int64(i)] = h
	}
	s.size++
	return nil
}

// fileHashes reads the file's tree and returns it with the leaf number
// and text of line lineNo.
func fileHashes(file string, lineNo int) (s *storedHashes, index int64, record []byte, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, nil, err
	}
	defer f.Close()
	s = &storedHashes{hashes: make(map[int64]tlog.Hash)}
	leaf := newLeafHasher()
	r := bufio.NewReaderSize(f, 1<<16)
	index = -1
	for n := 1; ; n++ {
		line, err := readLine(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, nil, fmt.Errorf("%s: %v", file, err)
		}
		if t, ok, err := parseContinues(line); ok {
			if err != nil {
				return nil, 0, nil, failf("%s line %d: %v", file, n, err)
			}
			if err := s.seed(&t); err != nil {
				return nil, 0, nil, failf("%s line %d: %v", file, n, err)
			}
			if n == lineNo {
				return nil, 0, nil, failf("%s line %d is a continues line, not an audit line: it has no proof", file, n)
			}
			continue
		}
		if n == lineNo {
			index, record = s.size, append([]byte(nil), line...)
		}
		if err := s.add(leaf.hash(line)); err != nil {
			return nil, 0, nil, err
		}
	}
	if index < 0 {
		return nil, 0, nil, failf("%s has no line %d", file, lineNo)
	}
	return s, index, record, nil
}

// seed takes the tree a continues line describes: at the start of the
// file, its subtree roots; further on (a file emptied and begun again), it
// must be the tree read so far.
func (s *storedHashes) seed(t *tree) error {
	if s.size == 0 && len(s.hashes) == 0 {
		var start int64
		for _, h := range t.frontier {
			level := 0
			for int64(1)<<(level+1) <= t.size-start {
				level++
			}
			s.hashes[tlog.StoredHashIndex(level, start>>level)] = h
			start += int64(1) << level
		}
		s.size = t.size
		return nil
	}
	if t.size != s.size {
		return fmt.Errorf("continues a log of %d lines, but the lines before it make %d", t.size, s.size)
	}
	return nil
}

package auditlog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Result is what a successful Verify checked.
type Result struct {
	Lines       int64 // leaves read from the files
	StartSize   int64 // tree size the first file continues from
	TreeSize    int64
	Checkpoints int // signed checkpoints matched against the lines
	// Before counts checkpoints of lines in files not given (before the
	// first one); they are not checked.
	Before int
}

// Failure is a verification that found the files differ from what was
// signed. Its message names the first line that differs.
type Failure struct{ Msg string }

func (f *Failure) Error() string { return f.Msg }

func failf(format string, args ...any) error { return &Failure{Msg: fmt.Sprintf(format, args...)} }

// signedPoint is one checkpoint that verified, with the leaf prefixes it
// carries (empty for a witness's copy).
type signedPoint struct {
	size, from int64
	root       tlog.Hash
	leaves     []byte
	source     string // file:line of the checkpoint, for messages
	note       string // the signed note itself, for proofs
}

// leafAt is where one leaf was read.
type leafAt struct {
	file   int32
	line   int32
	prefix [prefixLen]byte
}

// Verify checks audit files, given in the order they were written, against
// the signed checkpoints in checkpointFiles. Every line must be covered by
// a checkpoint whose signature v accepts, and the files must reach every
// checkpoint's size. It returns a *Failure naming the first line (1-based,
// per file) that was changed, removed, inserted or reordered.
func Verify(files, checkpointFiles []string, v note.Verifier) (*Result, error) {
	points, err := readCheckpoints(checkpointFiles, v)
	if err != nil {
		return nil, err
	}
	if len(points) == 0 {
		return nil, failf("no checkpoint found in %v", checkpointFiles)
	}

	var (
		t       tree
		res     Result
		leaves  []leafAt
		started bool
		next    int // first point not yet reached
		leaf    = newLeafHasher()
	)
	for fi, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		r := bufio.NewReaderSize(f, 1<<16)
		lineNo := int32(0)
		for {
			line, err := readLine(r)
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			lineNo++
			if c, ok, cerr := parseContinues(line); ok {
				if cerr != nil {
					f.Close()
					return nil, failf("%s line %d: %v", name, lineNo, cerr)
				}
				if !started {
					t, res.StartSize, started = c, c.size, true
					for next < len(points) && points[next].size <= t.size {
						next++
						res.Before++
					}
					continue
				}
				if !sameTree(&t, &c) {
					f.Close()
					return nil, failf("%s line %d: continues a log of %d lines, but the lines before it make %d: lines were removed or inserted before it, or a file is missing", name, lineNo, c.size, t.size)
				}
				continue
			}
			started = true
			h := leaf.hash(line)
			t.add(h)
			at := leafAt{file: int32(fi), line: lineNo}
			copy(at.prefix[:], h[:])
			leaves = append(leaves, at)
			if next < len(points) && points[next].size < t.size {
				// The files skipped past a checkpoint's size, which only
				// a continues line that was edited can do.
				f.Close()
				return nil, locate(files, leaves, res.StartSize, points, next)
			}
			if next < len(points) && points[next].size == t.size {
				if t.root() != points[next].root {
					f.Close()
					return nil, locate(files, leaves, res.StartSize, points, next)
				}
				next++
				res.Checkpoints++
			}
		}
		f.Close()
	}
	res.Lines, res.TreeSize = int64(len(leaves)), t.size
	if next < len(points) {
		p := points[next]
		if loc := locate(files, leaves, res.StartSize, points, next); loc != nil && !isShort(loc) {
			return nil, loc
		}
		return nil, failf("the files end at line %d of the log, but checkpoint %s covers %d lines: lines were cut off the end (or a file is missing)", t.size, p.source, p.size)
	}
	if res.Checkpoints == 0 {
		return nil, failf("no checkpoint covers any line of these files")
	}
	if last := points[len(points)-1].size; t.size > last {
		l := leaves[last-res.StartSize]
		return nil, failf("%s line %d: not covered by any checkpoint (%d lines after the last checkpoint, of %d lines): added after the last checkpoint, or written less than a checkpoint interval ago", files[l.file], l.line, t.size-last, last)
	}
	return &res, nil
}

// shortFailure marks the locate result that found no differing leaf.
type shortFailure struct{ Failure }

func isShort(err error) bool {
	var s *shortFailure
	return errors.As(err, &s)
}

// locate names the first line that differs from what checkpoint points[i]
// signed, using the leaf prefixes the checkpoints carry. Without them (a
// witness's copy alone) it names the range of lines.
func locate(files []string, leaves []leafAt, start int64, points []signedPoint, i int) error {
	want := make(map[int64][]byte)
	for _, p := range points {
		if int64(len(p.leaves)) != (p.size-p.from)*prefixLen {
			continue
		}
		for k := p.from; k < p.size; k++ {
			want[k] = p.leaves[(k-p.from)*prefixLen : (k-p.from+1)*prefixLen]
		}
	}
	from := start
	if i > 0 && points[i-1].size > from {
		from = points[i-1].size
	}
	p := points[i]
	got := func(k int64) []byte {
		if k-start < 0 || k-start >= int64(len(leaves)) {
			return nil
		}
		return leaves[k-start].prefix[:]
	}
	where := func(k int64) string {
		l := leaves[k-start]
		return fmt.Sprintf("%s line %d", files[l.file], l.line)
	}
	for k := from; k < p.size; k++ {
		w, ok := want[k]
		if !ok {
			break
		}
		g := got(k)
		if g == nil {
			return &shortFailure{Failure{fmt.Sprintf("the files end at line %d of the log, but checkpoint %s covers %d lines: lines were cut off the end (or a file is missing)", k, p.source, p.size)}}
		}
		if bytes.Equal(g, w) {
			continue
		}
		what := "changed"
		switch next := want[k+1]; {
		case bytes.Equal(g, next) && bytes.Equal(got(k+1), w):
			what = "reordered (swapped with the next line)"
		case bytes.Equal(g, next):
			what = "the line signed before it was removed"
		case bytes.Equal(got(k+1), w):
			what = "inserted"
		}
		return failf("%s: %s; it is line %d of the log, which checkpoint %s signed differently", where(k), what, k+1, p.source)
	}
	if int64(len(leaves))+start < p.size {
		return &shortFailure{Failure{fmt.Sprintf("the files end at line %d of the log, but checkpoint %s covers %d lines: lines were cut off the end (or a file is missing)", int64(len(leaves))+start, p.source, p.size)}}
	}
	first, last := from, p.size-1
	if last-start >= int64(len(leaves)) {
		last = start + int64(len(leaves)) - 1
	}
	return failf("a line from %s to %s differs from what checkpoint %s signed (changed, removed, inserted or reordered)", where(first), where(last), p.source)
}

func sameTree(a, b *tree) bool {
	if a.size != b.size || len(a.frontier) != len(b.frontier) {
		return false
	}
	for i := range a.frontier {
		if a.frontier[i] != b.frontier[i] {
			return false
		}
	}
	return true
}

// readLine returns the next line without its newline; a last line without
// one counts as a line.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		rest, err2 := r.ReadBytes('\n')
		line, err = append(append([]byte(nil), line...), rest...), err2
	}
	if err == io.EOF && len(line) > 0 {
		return line, nil
	}
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

// readCheckpoints reads the checkpoint lines of files (a .checkpoints
// file, or any log holding tokengate.checkpoint lines), checks each
// signature and orders them by size. Two different roots for one size are
// a fork: someone signed two histories.
func readCheckpoints(files []string, v note.Verifier) ([]signedPoint, error) {
	bySize := make(map[int64]signedPoint)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		r := bufio.NewReaderSize(f, 1<<16)
		for n := 1; ; n++ {
			line, err := readLine(r)
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return nil, err
			}
			if !bytes.Contains(line, []byte(`"checkpoint":`)) {
				continue
			}
			var c Checkpoint
			if json.Unmarshal(line, &c) != nil || c.Note == "" {
				continue
			}
			source := fmt.Sprintf("%s:%d", name, n)
			size, root, err := openCheckpoint(c.Note, v)
			if err != nil {
				f.Close()
				return nil, failf("checkpoint %s does not verify with key %s: %v", source, v.Name(), err)
			}
			leaves, _ := base64.StdEncoding.DecodeString(c.Leaves)
			p := signedPoint{size: size, from: c.From, root: root, leaves: leaves, source: source, note: c.Note}
			if old, ok := bySize[size]; ok {
				if old.root != root {
					f.Close()
					return nil, failf("checkpoints %s and %s sign different lines for the same %d lines", old.source, source, size)
				}
				if len(old.leaves) >= len(leaves) {
					continue
				}
			}
			bySize[size] = p
		}
		f.Close()
	}
	points := make([]signedPoint, 0, len(bySize))
	for _, p := range bySize {
		points = append(points, p)
	}
	sort.Slice(points, func(i, j int) bool { return points[i].size < points[j].size })
	return points, nil
}

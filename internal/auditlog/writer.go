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
	"path/filepath"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultCheckpointEvery = time.Second
	DefaultMaxLines        = 1000
)

// maxBacklog bounds the lines kept in memory while the file takes none.
// While the file fails the gateway refuses allowed calls, so what piles up
// is mostly the lines of those refusals; past the bound they are dropped.
const maxBacklog = 4 << 20

// Options configure a Writer.
type Options struct {
	Path string
	Key  *Key
	// Mode is the permission of a file the writer creates; default 0600.
	Mode os.FileMode
	// A checkpoint is signed every CheckpointEvery when lines were added,
	// and as soon as MaxLines lines are not covered by one.
	CheckpointEvery time.Duration
	MaxLines        int
	Roll            Roll
	// OnCheckpoint hears of every checkpoint signed (err nil) or that
	// could not be appended to the .checkpoints file. It is called with no
	// lock held, so it may log through this very writer.
	OnCheckpoint func(c Checkpoint, err error)
	Now          func() time.Time
}

// Writer appends audit lines to a file, one Write per line as zap does,
// and keeps each one recoverable and checkable:
//
//   - After each write it looks at the open file (one fstat). When the
//     file has no name left (rm, or another file renamed over it) or was
//     cut short (copytruncate), it opens the path again, starts the new
//     file with a continues line, and writes the line there too. Before a
//     write, at most every pathCheckEvery, it looks the path up: a file
//     moved away keeps the lines until then and the next go to the path.
//     So no line is lost to rm, a move or a replacement.
//   - A write that fails is undone (the file is cut back to the last whole
//     line) and returned as an error, which zap reports to the logger's
//     ErrorOutput: the gateway's audit hold hears of it with that very
//     line. The line is kept (up to maxBacklog) and written first by the
//     next write that reaches the path, so it recovers by itself.
//   - Every line is a leaf of a Merkle tree; checkpoints are signed on a
//     timer and every MaxLines lines.
type Writer struct {
	opts       Options
	checkpoint string // path of the .checkpoints file

	mu            sync.Mutex
	f             *os.File // nil after a failed reopen
	fi            os.FileInfo
	offset        int64 // where f's whole lines end
	needHeader    bool  // f is new and the tree is not empty: a continues line goes first
	pathCheckedAt time.Time
	t             tree
	leaf          *leafHasher
	lastCP        int64  // tree size of the last checkpoint appended
	pending       []byte // leaf hash prefixes of lines lastCP+1 .. t.size
	closed        bool
	// backlog holds lines whose write failed, to be written first when
	// the file takes lines again. It is bounded by maxBacklog.
	backlog []byte
	// rolledCheckpoints were signed while rolling, to be reported once
	// the lock is released.
	rolledCheckpoints []Checkpoint

	stop chan struct{}
	done chan struct{}
}

// Open opens or creates the file at opts.Path. An existing file's lines
// are read to continue its tree; a last line cut short (by a crash) is
// removed, since no checkpoint can cover it.
func Open(opts Options) (*Writer, error) {
	if opts.Key == nil {
		return nil, errors.New("audit writer needs a signing key")
	}
	if opts.Mode == 0 {
		opts.Mode = 0o600
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.MaxLines <= 0 {
		opts.MaxLines = DefaultMaxLines
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Writer{opts: opts, checkpoint: opts.Path + ".checkpoints", leaf: newLeafHasher(), stop: make(chan struct{}), done: make(chan struct{})}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(opts.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, opts.Mode)
	if err != nil {
		return nil, err
	}
	w.f = f
	if w.fi, err = f.Stat(); err != nil {
		f.Close()
		return nil, err
	}
	if w.fi.Mode().IsRegular() {
		if err := w.resume(); err != nil {
			f.Close()
			return nil, fmt.Errorf("reading %s to continue its tree: %v", opts.Path, err)
		}
	}
	go w.tick()
	return w, nil
}

// resume rebuilds the tree from the lines already in the file and takes
// the leaves the last checkpoint does not cover as pending.
func (w *Writer) resume() error {
	last := lastCheckpointSize(w.checkpoint)
	r := bufio.NewReaderSize(io.NewSectionReader(w.f, 0, w.fi.Size()), 1<<16)
	var whole int64
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			rest, err2 := r.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), err2
		}
		if err != nil {
			break // io.EOF, maybe after a fragment
		}
		whole += int64(len(line))
		body := line[:len(line)-1]
		if t, ok, err := parseContinues(body); ok {
			if err != nil {
				return err
			}
			w.t, w.pending = t, w.pending[:0]
			continue
		}
		h := w.leaf.hash(body)
		w.t.add(h)
		if w.t.size > last {
			w.pending = append(w.pending, h[:prefixLen]...)
		}
	}
	if whole < w.fi.Size() {
		if err := w.f.Truncate(whole); err != nil {
			return err
		}
	}
	w.offset = whole
	w.lastCP = w.t.size - int64(len(w.pending)/prefixLen)
	return nil
}

// lastCheckpointSize is the tree size of the last line of a .checkpoints
// file, 0 when there is none.
func lastCheckpointSize(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	b = bytes.TrimRight(b, "\n")
	var c Checkpoint
	if json.Unmarshal(b[bytes.LastIndexByte(b, '\n')+1:], &c) != nil {
		return 0
	}
	return c.TreeSize
}

// Write appends p, one or more whole lines, and returns an error when
// they could not all be recorded at the path.
func (w *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if p[len(p)-1] != '\n' {
		p = append(p[:len(p):len(p)], '\n')
	}
	w.mu.Lock()
	err := os.ErrClosed
	if !w.closed {
		err = w.writeAfterBacklog(p)
	}
	var cpErr error
	if err == nil && w.t.size-w.lastCP >= int64(w.opts.MaxLines) {
		var signed []Checkpoint
		signed, cpErr = w.checkpointLocked()
		w.rolledCheckpoints = append(w.rolledCheckpoints, signed...)
	}
	signed := w.rolledCheckpoints
	w.rolledCheckpoints = nil
	w.mu.Unlock()
	w.report(signed, cpErr)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeAfterBacklog writes the lines that failed before, then p; when
// that fails, p joins them, so a line is written late rather than never.
func (w *Writer) writeAfterBacklog(p []byte) error {
	data := p
	if len(w.backlog) > 0 {
		data = append(w.backlog, p...)
	}
	err := w.write(data)
	switch {
	case err == nil:
		w.backlog = nil
	case len(data) <= maxBacklog:
		w.backlog = append(w.backlog[:len(w.backlog):len(w.backlog)], p...)
	}
	return err
}

func (w *Writer) write(p []byte) error {
	if w.f == nil || w.pathMoved() {
		if err := w.reopen(); err != nil {
			return err
		}
	}
	if w.rollDue(len(p)) {
		w.roll()
		if w.f == nil {
			if err := w.reopen(); err != nil {
				return err
			}
		}
	}
	if err := w.append(p); err != nil {
		return err
	}
	switch w.moved() {
	case inPlace:
		w.addLeaves(p)
		return nil
	case deleted:
		// The lines reached a file nobody can read any more: they are
		// leaves there, and are written again where readers look.
		w.addLeaves(p)
	case cutShort:
		// The lines went into the file being emptied, or were cut
		// away with what the copy holds before them: they count
		// once, in the emptied file.
	}
	if err := w.reopen(); err != nil {
		return err
	}
	if err := w.append(p); err != nil {
		return err
	}
	w.addLeaves(p)
	return nil
}

// Where the lines just written are, as seen from the path.
type placement int

const (
	inPlace  placement = iota
	deleted            // the file has no name left (rm, or another file renamed over it)
	cutShort           // the file is shorter than what was written (copytruncate)
)

// append writes p after a continues line when one is due. A failed or
// short write is cut back, so the file never holds half a line.
func (w *Writer) append(p []byte) error {
	if w.needHeader {
		if err := w.appendRaw(marshalContinues(&w.t, w.opts.Now())); err != nil {
			return err
		}
		w.needHeader = false
	}
	return w.appendRaw(p)
}

func (w *Writer) appendRaw(p []byte) error {
	n, err := w.f.Write(p)
	if err != nil {
		if n > 0 && w.fi.Mode().IsRegular() {
			_ = w.f.Truncate(w.offset)
		}
		return err
	}
	w.offset += int64(n)
	return nil
}

func (w *Writer) addLeaves(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		h := w.leaf.hash(p[:i])
		w.t.add(h)
		w.pending = append(w.pending, h[:prefixLen]...)
		p = p[i+1:]
	}
}

// pathCheckEvery is how often the path is looked up before a write. The
// file's own state (deleted, cut short) is looked at after every write,
// which costs no path lookup; a file moved away under another name keeps
// taking lines until the next lookup, and so loses none.
const pathCheckEvery = 100 * time.Millisecond

// pathMoved tells, at most every pathCheckEvery, whether the path leads
// elsewhere than the file written to.
func (w *Writer) pathMoved() bool {
	now := time.Now()
	if now.Sub(w.pathCheckedAt) < pathCheckEvery {
		return false
	}
	w.pathCheckedAt = now
	fi, err := os.Stat(w.opts.Path)
	return err != nil || !os.SameFile(fi, w.fi)
}

// moved tells whether the lines just written are still in the file at the
// path, as far as the open file itself tells.
func (w *Writer) moved() placement {
	links, size, err := fileState(w.f)
	switch {
	case err != nil || links == 0:
		return deleted
	case w.fi.Mode().IsRegular() && size < w.offset:
		return cutShort
	}
	return inPlace
}

// reopen opens the path again, creating the file when it is gone. A file
// cut short in place is emptied: what it held was copied away before the
// cut, or lost to it.
func (w *Writer) reopen() error {
	if w.f != nil {
		if fi, err := os.Stat(w.opts.Path); err == nil && os.SameFile(fi, w.fi) {
			if err := w.f.Truncate(0); err != nil {
				return err
			}
			w.offset, w.needHeader = 0, w.t.size > 0
			return nil
		}
		w.f.Close()
		w.f = nil
	}
	f, err := os.OpenFile(w.opts.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, w.opts.Mode)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.fi, w.offset, w.needHeader = f, fi, fi.Size(), w.t.size > 0
	return nil
}

// Checkpoint signs a checkpoint now when lines were added since the last.
func (w *Writer) Checkpoint() {
	w.mu.Lock()
	signed, err := w.checkpointLocked()
	w.mu.Unlock()
	w.report(signed, err)
}

func (w *Writer) checkpointLocked() ([]Checkpoint, error) {
	if w.t.size == w.lastCP {
		return nil, nil
	}
	signed, err := signCheckpoint(&w.t, w.opts.Key)
	if err != nil {
		return nil, err
	}
	now := w.opts.Now()
	c := Checkpoint{
		Level: "info", TS: unixSeconds(now), Logger: CheckpointLogger, Msg: CheckpointMsg, Schema: schemaVersion,
		File: w.opts.Path, TreeSize: w.t.size, From: w.lastCP,
		Leaves: base64.StdEncoding.EncodeToString(w.pending), Note: signed,
	}
	line, _ := json.Marshal(c)
	if err := appendFile(w.checkpoint, append(line, '\n'), w.opts.Mode); err != nil {
		// The lines stay pending: the next checkpoint covers them.
		return nil, fmt.Errorf("appending a checkpoint to %s: %v", w.checkpoint, err)
	}
	w.lastCP, w.pending = w.t.size, w.pending[:0]
	c.Leaves = ""
	return []Checkpoint{c}, nil
}

func appendFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (w *Writer) report(signed []Checkpoint, err error) {
	if w.opts.OnCheckpoint == nil {
		return
	}
	if err != nil {
		w.opts.OnCheckpoint(Checkpoint{}, err)
	}
	for _, c := range signed {
		w.opts.OnCheckpoint(c, nil)
	}
}

func (w *Writer) tick() {
	defer close(w.done)
	t := time.NewTicker(w.opts.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.Checkpoint()
		}
	}
}

// Close signs a last checkpoint and closes the file. Later writes fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.Checkpoint()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

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
	// CheckEvery is how often the writer looks at its file (is it still
	// at the path, whole?) while lines are written; default
	// DefaultCheckEvery. Lines written in between are kept in memory
	// until the look finds them in place.
	CheckEvery time.Duration
	Roll       Roll
	// OnCheckpoint hears of every checkpoint signed (err nil) or that
	// could not be appended to the .checkpoints file. It is called with no
	// lock held, so it may log through this very writer.
	OnCheckpoint func(c Checkpoint, err error)
	Now          func() time.Time
}

// DefaultCheckEvery is how often the file is looked at by default: often
// enough that the lines kept for a replay stay few (a millisecond of
// lines), rarely enough that the look costs nothing per line.
const DefaultCheckEvery = time.Millisecond

// maxUnchecked bounds the bytes written between two looks at the file,
// whatever the time: a look is made at once past it.
const maxUnchecked = 256 << 10

// Writer appends audit lines to a file, one write system call per Write,
// as Caddy's file writer does, and keeps each line recoverable and
// checkable:
//
//   - A write that fails is undone (the file is cut back to the last whole
//     line) and returned as an error, which zap reports to the logger's
//     ErrorOutput: the gateway's audit hold hears of it with that very
//     line. The line is kept (up to maxBacklog) and written first by the
//     next write that reaches the path, so it recovers by itself.
//   - Every CheckEvery (by the first Write after it, or by its timer
//     once writes stop; and before a roll, a checkpoint or Close) it looks
//     at the open file and the path, once for all the lines written since
//     the last look, which it keeps a copy of until then. When the file has
//     no name left (rm, or another file renamed over it), it opens the
//     path again, starts the new file with a continues line and writes
//     the kept lines there too; when the file was cut short
//     (copytruncate), it does the same with the lines written after the
//     cut. A file moved away keeps the lines written to it, and the next
//     go to the path. So no line is lost to rm, a move or a replacement:
//     a line written to a deleted file is in memory until the next look
//     writes it again (a crash before that look loses it).
//   - Every line is a leaf of a Merkle tree once a look found it in
//     place; checkpoints are signed on a timer and every MaxLines leaves.
//     The hashing is done by a goroutine of its own, off the path of
//     Write, except when the tree is needed at once (a continues line, a
//     checkpoint on the timer, a roll, Close) or the hasher falls behind
//     by maxUnhashed. Measured on two cores, hashing each line as Write
//     writes it cost more lines a second than the handoff does.
type Writer struct {
	opts       Options
	checkpoint string // path of the .checkpoints file

	mu         sync.Mutex
	f          *os.File // nil after a failed reopen or a move
	fi         os.FileInfo
	offset     int64 // where f's whole lines end
	needHeader bool  // f is new and the tree is not empty: a continues line goes first
	closed     bool
	// confirmed holds lines a look found in place, in order, until they
	// are hashed into the tree.
	confirmed []byte
	wake      chan struct{} // tells the hasher there are confirmed lines
	hashing   bool          // the hasher runs; false once Close stopped it
	hashDone  chan struct{}

	// unchecked holds the lines written to f since the last look, which
	// are leaves only once a look found them in the file at the path.
	unchecked  []byte
	checkTimer *time.Timer // looks CheckEvery after the last look
	checkArmed bool
	// lookDue tells that the last look is CheckEvery old: the next
	// Write looks at once. The timer sets it, so that Write reads no
	// clock.
	lookDue bool
	// backlog holds lines not in any file the path leads to (their write
	// failed, or the file was deleted and could not be made again), to
	// be written first when the file takes lines again. It is bounded by
	// maxBacklog.
	backlog []byte
	// signed and signErr are the checkpoints signed with mu held, to be
	// reported once it is released.
	signed  []Checkpoint
	signErr error

	stop chan struct{}
	done chan struct{}

	// The tree and what a checkpoint needs, guarded by treeMu. It is
	// taken with mu held, or by the hasher alone after it took a batch
	// of confirmed lines with mu held, so leaves are added in order.
	treeMu  sync.Mutex
	t       tree
	leaf    *leafHasher
	lastCP  int64  // tree size of the last checkpoint appended
	pending []byte // leaf hash prefixes of lines lastCP+1 .. t.size
	hashBuf []byte // the hasher's batch
	// cpLine is the checkpoint line being appended and cpLeaves the
	// base64 of its leaf prefixes, kept to be reused: with the prefixes
	// of 1000 lines each is some 11 KB.
	cpLine   bytes.Buffer
	cpLeaves []byte
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
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = DefaultCheckEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Writer{
		opts: opts, checkpoint: opts.Path + ".checkpoints", leaf: newLeafHasher(),
		wake: make(chan struct{}, 1), hashing: true, hashDone: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
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
	w.checkTimer = time.AfterFunc(time.Hour, w.checkLater)
	w.checkTimer.Stop()
	go w.tick()
	go w.hash()
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
// they could not all be written to the file at the path.
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
		err = w.writeLocked(p)
	}
	signed, cpErr := w.takeSigned()
	w.mu.Unlock()
	w.report(signed, cpErr)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeLocked writes p behind the lines waiting in the backlog. Past
// maxBacklog those are tried alone first, and p is dropped when they
// still cannot be written: while the file fails the gateway refuses
// allowed calls, so what piles up is mostly the lines of those refusals.
// With no backlog, p is written as it is and copied only once, into the
// unchecked lines.
func (w *Writer) writeLocked(p []byte) error {
	if len(w.backlog) == 0 {
		if err := w.place(p); err != nil {
			w.backlog = append(w.backlog, p...)
			return err
		}
		return w.lookWhenDue()
	}
	if len(w.backlog)+len(p) > maxBacklog {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.backlog = append(w.backlog, p...)
	return w.flush()
}

// flush writes the backlog to the file at the path, in one write. Lines
// stay in the backlog until written, so that a line is written late
// rather than never.
func (w *Writer) flush() error {
	if len(w.backlog) == 0 {
		return nil
	}
	if err := w.place(w.backlog); err != nil {
		return err
	}
	w.backlog = w.backlog[:0]
	return w.lookWhenDue()
}

// place writes p to the file at the path, rolling it first when due, and
// keeps p among the unchecked lines. On an error p is not kept: the caller
// keeps it in the backlog (behind any unchecked lines a look before the
// roll could not place, which go there first).
func (w *Writer) place(p []byte) error {
	if w.f == nil {
		if err := w.reopen(); err != nil {
			return err
		}
	}
	if w.rollDue(len(p)) {
		// The rolled file must end with lines known to be in it, all
		// covered by the checkpoint the roll signs.
		if err := w.check(); err != nil {
			return err
		}
		if w.f != nil && w.rollDue(len(p)) {
			w.roll()
		}
		if w.f == nil {
			if err := w.reopen(); err != nil {
				return err
			}
		}
	}
	if err := w.append(p); err != nil {
		return err
	}
	w.unchecked = append(w.unchecked, p...)
	return nil
}

// lookWhenDue looks at the file at once when the last look is CheckEvery
// old or the unchecked lines reached maxUnchecked; otherwise the lines
// wait for the next write after the timer says a look is due. The timer,
// not a clock read per line, paces the looks: reading the clock cost more
// than the look.
func (w *Writer) lookWhenDue() error {
	if w.lookDue || len(w.unchecked) >= maxUnchecked {
		return w.check()
	}
	w.armLook()
	return nil
}

// armLook sets the timer to look CheckEvery from now, unless it is set.
func (w *Writer) armLook() {
	if !w.checkArmed && !w.closed {
		w.checkArmed = true
		w.checkTimer.Reset(w.opts.CheckEvery)
	}
}

// checkLater runs CheckEvery after the last look: the next Write is to
// look. When no Write did by the time it runs again, writes stopped, and
// it looks itself, so that the last lines are not left unchecked. A
// failure it finds is returned by the next Write, whose line waits in the
// backlog behind the ones the look could not place.
func (w *Writer) checkLater() {
	w.mu.Lock()
	w.checkArmed = false
	switch {
	case !w.lookDue:
		w.lookDue = true
		if len(w.unchecked) > 0 {
			w.armLook()
		}
	case len(w.unchecked) > 0:
		_ = w.check()
	}
	signed, cpErr := w.takeSigned()
	w.mu.Unlock()
	w.report(signed, cpErr)
}

// Where the unchecked lines are, as seen from the path.
type placement int

const (
	inPlace   placement = iota
	movedAway           // the file has another name now; the path leads elsewhere or nowhere
	deleted             // the file has no name left (rm, or another file renamed over it)
	cutShort            // the file is shorter than what was written (copytruncate)
)

// look tells where the lines written to f are: one fstat of the open file
// and one lookup of the path.
func (w *Writer) look() placement {
	links, size, err := fileState(w.f)
	switch {
	case err != nil || links == 0:
		return deleted
	case w.fi.Mode().IsRegular() && size < w.offset:
		return cutShort
	}
	if fi, err := os.Stat(w.opts.Path); err != nil || !os.SameFile(fi, w.fi) {
		return movedAway
	}
	return inPlace
}

// check looks at the file and settles the unchecked lines: those found in
// a readable file become leaves; those in a deleted file, or cut away
// after they were written, are written again at the path (after a
// continues line) and looked at once more. When the path takes no file,
// they join the backlog, and the error is returned.
func (w *Writer) check() error {
	w.lookDue = false
	w.armLook()
	// Files keep changing under the writer only while someone keeps
	// changing them: lines still unplaced after a few rounds wait for
	// the next look, written but not yet leaves.
	for range 3 {
		if w.f == nil || len(w.unchecked) == 0 {
			return nil
		}
		switch w.look() {
		case inPlace:
			w.confirmUnchecked()
			return nil
		case movedAway:
			// Readable under its new name, with the lines: they are
			// leaves there, and the next line goes to the path.
			w.confirmUnchecked()
			w.f.Close()
			w.f = nil
			return nil
		case cutShort:
			w.settleCut()
		case deleted:
			// Nobody can read the lines where they are.
		}
		if err := w.reopen(); err != nil {
			w.unplaced()
			return err
		}
		if err := w.append(w.unchecked); err != nil {
			w.unplaced()
			return err
		}
	}
	return nil
}

// settleCut leaves in the unchecked lines only those written after the
// file was cut short, which are what the file now holds: the ones before
// the cut were in the file when it was copied (copytruncate), or were
// lost between the copy and the cut, which verify then reports. They
// count once, where they were first written. When the file's size does
// not end the unchecked lines at a line boundary (it was cut to a size
// other than 0), all of them are written again.
func (w *Writer) settleCut() {
	_, size, err := fileState(w.f)
	if err != nil || size > int64(len(w.unchecked)) {
		return
	}
	before := len(w.unchecked) - int(size)
	if before > 0 && w.unchecked[before-1] != '\n' {
		return
	}
	w.confirm(w.unchecked[:before])
	w.unchecked = append(w.unchecked[:0], w.unchecked[before:]...)
}

// unplaced moves the unchecked lines, which no file at the path holds, to
// the front of the backlog: they were written before any line in it.
func (w *Writer) unplaced() {
	w.backlog, w.unchecked = append(w.unchecked, w.backlog...), w.backlog[:0]
}

// append writes p after a continues line when one is due. A failed or
// short write is cut back, so the file never holds half a line.
func (w *Writer) append(p []byte) error {
	if w.needHeader {
		w.treeMu.Lock()
		w.settleLocked()
		header := marshalContinues(&w.t, w.opts.Now())
		w.treeMu.Unlock()
		if err := w.appendRaw(header); err != nil {
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

// maxUnhashed bounds the confirmed lines waiting for the hasher: past it
// (the hasher's goroutine is not getting the CPU) they are hashed at once.
const maxUnhashed = 1 << 20

// confirmUnchecked queues all the unchecked lines, which a look found in
// place, for the hasher (mu held). When the hasher took every line before
// them, the two buffers are swapped rather than copied.
func (w *Writer) confirmUnchecked() {
	if len(w.confirmed) > 0 {
		w.confirm(w.unchecked)
		w.unchecked = w.unchecked[:0]
		return
	}
	w.confirmed, w.unchecked = w.unchecked, w.confirmed[:0]
	w.wakeHasher()
}

// confirm queues a copy of lines a look found in place for the hasher
// (mu held).
func (w *Writer) confirm(p []byte) {
	if len(p) == 0 {
		return
	}
	w.confirmed = append(w.confirmed, p...)
	w.wakeHasher()
}

// wakeHasher tells the hasher there are confirmed lines, or hashes them at
// once past maxUnhashed, when its goroutine is not getting the CPU.
func (w *Writer) wakeHasher() {
	if len(w.confirmed) == 0 {
		return
	}
	if len(w.confirmed) >= maxUnhashed {
		w.treeMu.Lock()
		w.settleLocked()
		w.treeMu.Unlock()
		return
	}
	if w.hashing {
		select {
		case w.wake <- struct{}{}:
		default: // already told
		}
	}
}

// hash makes the confirmed lines leaves, a batch at a time, while Write
// goes on writing.
func (w *Writer) hash() {
	defer close(w.hashDone)
	for range w.wake {
		w.mu.Lock()
		if len(w.confirmed) == 0 {
			w.mu.Unlock()
			continue
		}
		w.treeMu.Lock()
		w.hashBuf, w.confirmed = w.confirmed, w.hashBuf[:0]
		w.mu.Unlock()
		var signed []Checkpoint
		var err error
		w.addLeaves(w.hashBuf, &signed, &err)
		w.treeMu.Unlock()
		w.report(signed, err)
	}
}

// settleLocked hashes the confirmed lines the hasher has not taken, so
// that the tree holds every one (mu and treeMu held).
func (w *Writer) settleLocked() {
	w.addLeaves(w.confirmed, &w.signed, &w.signErr)
	w.confirmed = w.confirmed[:0]
}

// addLeaves makes each line of p a leaf, signing a checkpoint whenever
// MaxLines leaves are not covered by one (treeMu held). Checkpoints
// signed, or the error, go to signed and errp.
func (w *Writer) addLeaves(p []byte, signed *[]Checkpoint, errp *error) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		h := w.leaf.hash(p[:i])
		w.t.add(h)
		w.pending = append(w.pending, h[:prefixLen]...)
		p = p[i+1:]
		if w.t.size-w.lastCP >= int64(w.opts.MaxLines) {
			keep(signed, errp)(w.checkpointLocked())
		}
	}
}

// keep returns a function storing a checkpoint, or an error, in signed
// and errp.
func keep(signed *[]Checkpoint, errp *error) func(*Checkpoint, error) {
	return func(c *Checkpoint, err error) {
		switch {
		case err != nil:
			*errp = err
		case c != nil:
			*signed = append(*signed, *c)
		}
	}
}

// reopen opens the path again, creating the file when it is gone. A file
// cut short in place is emptied: what it held was copied away before the
// cut, or lost to it.
func (w *Writer) reopen() error {
	w.treeMu.Lock()
	w.settleLocked() // the tree's size tells whether a continues line is due
	w.treeMu.Unlock()
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

// Checkpoint looks at the file and signs a checkpoint when lines were
// added since the last. Lines still waiting in the backlog are tried
// first, so they do not wait for the next Write.
func (w *Writer) Checkpoint() {
	w.mu.Lock()
	if w.f != nil || !w.closed {
		if err := w.flush(); err == nil {
			_ = w.check()
		}
	}
	w.sign()
	signed, err := w.takeSigned()
	w.mu.Unlock()
	w.report(signed, err)
}

// sign makes every confirmed line a leaf and signs a checkpoint of the
// tree when it grew since the last one, keeping it (or the error) for
// takeSigned (mu held).
func (w *Writer) sign() {
	w.treeMu.Lock()
	defer w.treeMu.Unlock()
	w.settleLocked()
	keep(&w.signed, &w.signErr)(w.checkpointLocked())
}

// takeSigned returns what sign kept, to be reported with no lock held.
func (w *Writer) takeSigned() ([]Checkpoint, error) {
	signed, err := w.signed, w.signErr
	w.signed, w.signErr = nil, nil
	return signed, err
}

func (w *Writer) checkpointLocked() (*Checkpoint, error) {
	if w.t.size == w.lastCP {
		return nil, nil
	}
	signed, err := signCheckpoint(&w.t, w.opts.Key)
	if err != nil {
		return nil, err
	}
	now := w.opts.Now()
	w.cpLeaves = base64.StdEncoding.AppendEncode(w.cpLeaves[:0], w.pending)
	c := Checkpoint{
		Level: "info", TS: unixSeconds(now), Logger: CheckpointLogger, Msg: CheckpointMsg, Schema: schemaVersion,
		File: w.opts.Path, TreeSize: w.t.size, From: w.lastCP,
		Leaves: string(w.cpLeaves), Note: signed,
	}
	w.cpLine.Reset()
	_ = json.NewEncoder(&w.cpLine).Encode(c) // the line and its '\n'
	if err := appendFile(w.checkpoint, w.cpLine.Bytes(), w.opts.Mode); err != nil {
		// The lines stay pending: the next checkpoint covers them.
		return nil, fmt.Errorf("appending a checkpoint to %s: %v", w.checkpoint, err)
	}
	w.lastCP, w.pending = w.t.size, w.pending[:0]
	c.Leaves = ""
	return &c, nil
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

// Close looks at the file a last time, signs a last checkpoint and closes
// the file. Later writes fail.
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
	w.checkTimer.Stop()
	w.Checkpoint()
	w.mu.Lock()
	w.hashing = false
	close(w.wake)
	w.mu.Unlock()
	<-w.hashDone
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

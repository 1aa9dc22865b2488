package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// flakyWriter fails while broken is set, as a full disk does.
type flakyWriter struct {
	broken atomic.Bool
	lines  atomic.Int64
}

func (w *flakyWriter) Write(p []byte) (int, error) {
	if w.broken.Load() {
		return 0, errors.New("no space left on device")
	}
	w.lines.Add(1)
	return len(p), nil
}

func (w *flakyWriter) Sync() error { return nil }

func TestHealthFollowsWrites(t *testing.T) {
	w := new(flakyWriter)
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	l := New(zap.New(zapcore.NewCore(enc, w, zapcore.InfoLevel)).Named(LoggerName))
	h := l.Health()

	l.Call(&Call{Decision: "allow"})
	if !h.Healthy() || h.Err() != nil {
		t.Fatalf("healthy after a good write: %v", h.Err())
	}

	w.broken.Store(true)
	if ce := l.CheckCall(); ce != nil {
		WriteCall(ce, &Call{Decision: "allow"})
	}
	if h.Healthy() {
		t.Fatal("still healthy after a failed write")
	}
	if err := h.Err(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Err = %v, want the write error", err)
	}
	l.Action(&Action{Msg: "token.revoked"})
	if h.Healthy() {
		t.Fatal("healthy after a second failed write")
	}

	w.broken.Store(false)
	l.Action(&Action{Msg: "token.revoked"})
	if !h.Healthy() {
		t.Fatalf("not healthy after a write succeeded again: %v", h.Err())
	}
	if got := w.lines.Load(); got != 2 {
		t.Fatalf("%d lines reached the writer, want 2", got)
	}
}

func TestHealthWithoutSink(t *testing.T) {
	l := New(zap.NewNop())
	l.Call(&Call{Decision: "allow"})
	if !l.Health().Healthy() {
		t.Fatal("a logger that writes nowhere is not a failing one")
	}
}

func TestFileWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	appendLine := func(p string) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("{}\n")
		f.Close()
	}
	appendLine(path)
	// The writer keeps its file open, so a deleted file's inode number is
	// not handed to the next file made.
	hold := func() {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
	}
	hold()
	h := new(Health)
	w := NewFileWatch(path, h)
	wrote := func() { h.endWrite(h.beginWrite()) }
	expect := func(step string, wantLost bool) {
		t.Helper()
		if lost, why := w.Check(); lost != wantLost || h.Healthy() == wantLost {
			t.Fatalf("%s: lost=%v (%s) healthy=%v, want lost=%v", step, lost, why, h.Healthy(), wantLost)
		}
	}

	expect("start", false)
	wrote()
	appendLine(path)
	expect("lines landing", false)

	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	wrote()
	expect("copy and truncate keeps the file", false)

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	expect("moved away", true)
	if err := os.Rename(path+".1", path); err != nil {
		t.Fatal(err)
	}
	expect("moved back", false)

	// What Caddy's writer does when it rolls over by size.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	appendLine(path)
	hold()
	wrote()
	expect("rolled over: a new file holding the line that rolled it", false)
	appendLine(path)
	wrote()
	expect("rolled over: the new file grows", false)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	expect("deleted", true)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wrote()
	expect("an empty file in its place that lines do not reach", true)
	appendLine(path)
	hold()
	wrote()
	expect("a new file lines reach (the writer rolled over)", false)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	expect("deleted again", true)
	if err := os.WriteFile(path, []byte("{}\n{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrote()
	expect("a copy put back that lines do not reach", true)
	wrote()
	expect("the copy still does not grow", true)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	expect("a directory in its place", true)
}

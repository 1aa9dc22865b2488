package audit

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestHealthWatchTellsChanges breaks and mends the sink while Watch
// looks: it hears of each change once, in order, and stops with its
// context.
func TestHealthWatchTellsChanges(t *testing.T) {
	w := new(flakyWriter)
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	l := New(zap.New(zapcore.NewCore(enc, w, zapcore.InfoLevel)).Named(LoggerName))
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan bool, 10)
	stopped := make(chan struct{})
	go func() {
		l.Health().Watch(ctx, time.Millisecond, func(healthy bool) { changes <- healthy })
		close(stopped)
	}()
	expect := func(want bool) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("Watch told healthy=%v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Watch never told healthy=%v", want)
		}
	}
	l.Call(&Call{Decision: "allow"}) // healthy, as Watch starts: nothing to tell
	w.broken.Store(true)
	l.Call(&Call{Decision: "allow"})
	l.Call(&Call{Decision: "allow"}) // still the same change
	expect(false)
	w.broken.Store(false)
	l.Call(&Call{Decision: "allow"})
	expect(true)
	cancel()
	<-stopped
	select {
	case got := <-changes:
		t.Fatalf("Watch told healthy=%v with nothing changed", got)
	default:
	}
}

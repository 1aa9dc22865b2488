package audit

import (
	"errors"
	"sync/atomic"
)

// Health tells whether audit lines are being recorded, so that a call is
// not let through while its line would be lost.
//
// Two things make it unhealthy. A write that fails (a full disk, a
// read-only file system, a closed pipe): zap reports it to the entry's
// ErrorOutput, which the Logger points here; the next write that
// succeeds, begun after that failure, makes it healthy again. And a
// watched file that was lost (deleted, or moved away and not followed by
// the writer), reported by FileWatch until the file is back.
//
// Reading it costs three atomic loads; nothing on the request path makes
// a system call for it.
type Health struct {
	// failures counts failed writes; confirmed is the count of failures
	// a later successful write had already seen when it began. Equal
	// means every failure was followed by a success.
	failures  atomic.Uint64
	confirmed atomic.Uint64
	// written counts lines written without an error, for FileWatch.
	written atomic.Uint64
	// lost counts the watched files that are currently lost.
	lost    atomic.Int64
	lastErr atomic.Pointer[string]
}

// ErrUnavailable is what Err wraps when audit lines cannot be recorded.
var ErrUnavailable = errors.New("audit log unavailable")

// Healthy reports whether the last write succeeded and no watched file is
// lost.
func (h *Health) Healthy() bool {
	return h.lost.Load() == 0 && h.confirmed.Load() == h.failures.Load()
}

// Err describes why h is unhealthy, or returns nil.
func (h *Health) Err() error {
	if h.Healthy() {
		return nil
	}
	if msg := h.lastErr.Load(); msg != nil {
		return errors.Join(ErrUnavailable, errors.New(*msg))
	}
	return ErrUnavailable
}

// Written returns the number of lines written without an error so far.
func (h *Health) Written() uint64 { return h.written.Load() }

// beginWrite returns the state a write starts from, for endWrite.
func (h *Health) beginWrite() uint64 { return h.failures.Load() }

// endWrite records a write that returned. When no write failed in the
// meantime (this one included), the failures seen before it are over.
// A concurrent failure keeps h unhealthy: only a write begun after a
// failure may clear it.
func (h *Health) endWrite(before uint64) {
	if h.failures.Load() != before {
		return
	}
	h.written.Add(1)
	for {
		c := h.confirmed.Load()
		if c >= before || h.confirmed.CompareAndSwap(c, before) {
			return
		}
	}
}

// failed records a failed write; msg is zap's description of it.
func (h *Health) failed(msg string) {
	h.lastErr.Store(&msg)
	h.failures.Add(1)
}

// setLost records that a watched file was lost (true) or is back.
func (h *Health) setLost(lost bool, msg string) {
	if lost {
		h.lastErr.Store(&msg)
		h.lost.Add(1)
		return
	}
	h.lost.Add(-1)
}

// errorSink is the ErrorOutput of every audit entry: zap writes to it only
// when a core failed to write the entry.
type errorSink struct{ h *Health }

func (s errorSink) Write(p []byte) (int, error) {
	s.h.failed(string(trimNewline(p)))
	return len(p), nil
}

func (s errorSink) Sync() error { return nil }

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

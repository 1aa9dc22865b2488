package audit

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Health tells whether audit lines are being recorded, so that a call is
// not let through while its line would be lost.
//
// A write that fails (a full disk, a read-only file system, a closed
// pipe, an audit file the tokengate_audit writer cannot open again) makes
// it unhealthy: zap reports it to the entry's ErrorOutput, which the
// Logger points here; the next write that succeeds, begun after that
// failure, makes it healthy again.
//
// Reading it costs two atomic loads; nothing on the request path makes a
// system call for it.
type Health struct {
	// failures counts failed writes; confirmed is the count of failures
	// a later successful write had already seen when it began. Equal
	// means every failure was followed by a success.
	failures  atomic.Uint64
	confirmed atomic.Uint64
	lastErr   atomic.Pointer[string]
}

// ErrUnavailable is what Err wraps when audit lines cannot be recorded.
var ErrUnavailable = errors.New("audit log unavailable")

// Healthy reports whether every failed write was followed by one that
// succeeded.
func (h *Health) Healthy() bool {
	return h.confirmed.Load() == h.failures.Load()
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

// Watch calls changed each time h is found healthy after unhealthy or the
// other way round, looking every interval until ctx is done, so that a
// change is logged once, away from the request path. h starts out
// counted as healthy.
func (h *Health) Watch(ctx context.Context, every time.Duration, changed func(healthy bool)) {
	t := time.NewTicker(every)
	defer t.Stop()
	wasHealthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if healthy := h.Healthy(); healthy != wasHealthy {
			wasHealthy = healthy
			changed(healthy)
		}
	}
}

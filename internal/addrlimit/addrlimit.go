// Package addrlimit is the brake on endpoints that take no credential
// (the token exchange): it limits attempts per client address in fixed
// windows, and keeps the audit trail of a flood short. The first refusal
// of an address in a window gets its own audit line; the ones after it
// are only counted, and the count is reported once, in one summary, when
// the window is over. Without that, a flood of refused attempts would
// write a line each and fill the audit disk, which stops every allowed
// call (audit fails closed).
package addrlimit

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter counts attempts per client address. The zero value is not
// usable; call New.
type Limiter struct {
	limit  int
	window time.Duration
	now    func() time.Time
	// maxAddrs bounds the memory a flood from many addresses can take.
	maxAddrs int

	mu        sync.Mutex
	windows   map[string]*window
	lastSweep time.Time
}

type window struct {
	start    time.Time
	attempts int
	// counted are refusals past the first, which got no line of their own.
	counted int
}

// Verdict is the answer to one attempt.
type Verdict struct {
	Allowed bool
	// RetryAfter is how long until the address's window ends (whole
	// seconds, at least one), when refused.
	RetryAfter time.Duration
	// Audit is true for the one refusal per address and window that gets
	// an audit line of its own; the others are counted in a Summary.
	Audit bool
}

// Summary counts the refusals of one address in one window that got no
// audit line of their own.
type Summary struct {
	Addr     string
	Refused  int
	From, To time.Time
}

// DefaultMaxAddrs is how many addresses a Limiter tracks at once.
const DefaultMaxAddrs = 1 << 16

// New returns a Limiter allowing limit attempts per address in each window
// of the given length, reading the time from now.
func New(limit int, length time.Duration, now func() time.Time) *Limiter {
	return &Limiter{limit: limit, window: length, now: now, maxAddrs: DefaultMaxAddrs, windows: map[string]*window{}}
}

// Key is the address attempts are counted under: the address itself for
// IPv4, its /64 for IPv6, which one host or one subscriber usually holds
// whole (counting each IPv6 address apart would let one host make up as
// many budgets as it likes). Anything that does not parse counts as one
// address, as given.
func Key(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	prefix, _ := ip.WithZone("").Prefix(64)
	return prefix.String()
}

// Attempt counts one attempt from addr (a Key) and says whether it may go
// on. It also returns the summaries of windows that have ended, for the
// caller to write.
func (l *Limiter) Attempt(addr string) (Verdict, []Summary) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var done []Summary
	if now.Sub(l.lastSweep) >= l.window {
		done = l.sweep(now, false)
		l.lastSweep = now
	}
	w := l.windows[addr]
	if w != nil && !now.Before(w.start.Add(l.window)) {
		done = appendSummary(done, addr, w, l.window)
		delete(l.windows, addr)
		w = nil
	}
	if w == nil {
		if len(l.windows) >= l.maxAddrs {
			// Full: refuse rather than forget a flooding address's count.
			// The sweep above frees the table within one window.
			return Verdict{RetryAfter: retryAfter(l.window)}, done
		}
		w = &window{start: now}
		l.windows[addr] = w
	}
	w.attempts++
	if w.attempts <= l.limit {
		return Verdict{Allowed: true}, done
	}
	v := Verdict{RetryAfter: retryAfter(w.start.Add(l.window).Sub(now)), Audit: w.attempts == l.limit+1}
	if !v.Audit {
		w.counted++
	}
	return v, done
}

// Flush returns the summaries of every window, ended or not, and forgets
// them: for the caller to write before it stops.
func (l *Limiter) Flush() []Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sweep(l.now(), true)
}

// sweep drops the windows that ended by now (all of them with all set) and
// returns the summaries of those with counted refusals.
func (l *Limiter) sweep(now time.Time, all bool) []Summary {
	var done []Summary
	for addr, w := range l.windows {
		if all || !now.Before(w.start.Add(l.window)) {
			done = appendSummary(done, addr, w, l.window)
			delete(l.windows, addr)
		}
	}
	return done
}

func appendSummary(done []Summary, addr string, w *window, length time.Duration) []Summary {
	if w.counted == 0 {
		return done
	}
	return append(done, Summary{Addr: addr, Refused: w.counted, From: w.start, To: w.start.Add(length)})
}

// retryAfter rounds d up to whole seconds, at least one: Retry-After
// counts in seconds, and 0 would invite an immediate retry.
func retryAfter(d time.Duration) time.Duration {
	s := (d + time.Second - 1) / time.Second
	return max(s, 1) * time.Second
}

// Package freshness tracks how current a node's view of token changes is.
//
// A node caches tokens and decisions and drops an entry when a change
// feed tells it the token changed. That is safe only while the feed is
// known to deliver: a connection that went silent (a relay or firewall
// that drops packets without closing anything) delivers nothing and
// reports no error. So the feed confirms, again and again, "every change
// committed before time T has been applied", and the Tracker holds the
// latest T. When no confirmation newer than the bound arrives, the node
// is stale and must not answer from its caches.
//
// T is taken on this node's clock before the confirming read is sent, so
// a slow answer makes the node look staler, never fresher than it is.
package freshness

import (
	"math"
	"sync/atomic"
	"time"
)

// DefaultBound is how far behind a node may be before it stops using its
// caches, when the operator sets no max_staleness.
const DefaultBound = 2 * time.Second

// Tracker holds the time up to which every token change is known to have
// been applied. It is safe for concurrent use; Fresh costs two atomic
// loads and a clock read, so the request path asks it on every call.
type Tracker struct {
	bound time.Duration
	now   func() time.Time
	// confirmed is the latest confirmation, as Unix nanoseconds of now's
	// clock; 0 means never (a node starts stale).
	confirmed atomic.Int64
}

// New returns a Tracker that calls the node stale once no confirmation
// newer than bound exists. now is the clock (time.Now outside tests).
func New(bound time.Duration, now func() time.Time) *Tracker {
	if bound <= 0 {
		bound = DefaultBound
	}
	if now == nil {
		now = time.Now
	}
	return &Tracker{bound: bound, now: now}
}

// Bound is the staleness the tracker tolerates.
func (t *Tracker) Bound() time.Duration { return t.bound }

// Confirm records that every change committed before asOf has been
// applied. Confirmations only move forward: one that arrives late (an
// older read answered after a newer one) changes nothing.
func (t *Tracker) Confirm(asOf time.Time) {
	n := int64(math.MaxInt64) // past 2262, where UnixNano overflows
	if asOf.Before(time.Unix(0, n)) {
		n = asOf.UnixNano()
	}
	for {
		old := t.confirmed.Load()
		if n <= old || t.confirmed.CompareAndSwap(old, n) {
			return
		}
	}
}

// Lost forgets every confirmation: the node is stale from now on until the
// next Confirm. The feed calls it when it knows it has missed changes it
// cannot read back (its position was pruned from the feed), so that the
// caches stop being trusted at once rather than when the bound runs out.
func (t *Tracker) Lost() { t.confirmed.Store(0) }

// Lag is how far behind the node may be: the time since the latest
// confirmation (0 when that is in the future, as for a store no other
// node writes). Before any confirmation it is the time since the Unix
// epoch, which reads as "never" on a dashboard.
func (t *Tracker) Lag() time.Duration {
	lag := t.now().Sub(time.Unix(0, t.confirmed.Load()))
	return max(lag, 0)
}

// Fresh reports whether the node has confirmed, within the bound, that it
// has seen every change.
func (t *Tracker) Fresh() bool { return t.Lag() <= t.bound }

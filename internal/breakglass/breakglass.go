// Package breakglass is the two-step recovery for lost bootstrap secrets:
// when nobody holds a management token any more, the local operator may
// create a new pair, but only in two steps that each leave an audit line
// and that need two different things. Start records who the new tokens are
// for and why, and makes a confirmation code that goes to a file only the
// Caddy service's user can read (not to whoever called the admin
// endpoint); Confirm takes that code, no sooner than Delay after Start, so
// the started line can raise an alarm before anything is issued.
package breakglass

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"sync"
	"time"
)

// Delay is the least time between Start and Confirm; Window is how long
// after that a confirmation is still taken.
const (
	Delay  = 10 * time.Minute
	Window = time.Hour
)

// maxTries is how many wrong codes cancel a recovery: a code is guessed
// only by someone without the file, who gets this many tries in all.
const maxTries = 3

// Errors of Start and Confirm.
var (
	ErrPending  = errors.New("a break-glass recovery is already pending on this node")
	ErrUnknown  = errors.New("no pending break-glass recovery with that id")
	ErrTooEarly = errors.New("the break-glass recovery cannot be confirmed yet")
	ErrExpired  = errors.New("the break-glass recovery expired; start again")
	ErrCode     = errors.New("wrong break-glass confirmation code")
)

// Recovery is one pending recovery.
type Recovery struct {
	ID                          string
	Requester, Approver, Reason string
	StartedAt, NotBefore        time.Time
	code                        string
	tries                       int
}

// Desk holds the one recovery a node may have pending. The zero value is
// ready.
type Desk struct {
	mu      sync.Mutex
	pending *Recovery
}

// Start records a recovery and returns it with its confirmation code,
// unless one is pending and not expired.
func (d *Desk) Start(now time.Time, requester, approver, reason string) (Recovery, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.pending; p != nil && !now.After(p.NotBefore.Add(Window)) {
		return Recovery{}, "", ErrPending
	}
	r := &Recovery{ID: "bg_" + rand.Text()[:16], Requester: requester, Approver: approver, Reason: reason,
		StartedAt: now, NotBefore: now.Add(Delay), code: rand.Text()}
	d.pending = r
	return *r, r.code, nil
}

// Confirm takes the code of the pending recovery id. It returns the
// recovery, and forgets it, when the code matches within the window; a
// wrong code counts against maxTries, and the last one cancels it.
func (d *Desk) Confirm(now time.Time, id, code string) (Recovery, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pending
	switch {
	case p == nil || subtle.ConstantTimeCompare([]byte(p.ID), []byte(id)) != 1:
		return Recovery{}, ErrUnknown
	case now.After(p.NotBefore.Add(Window)):
		d.pending = nil
		return Recovery{}, ErrExpired
	case now.Before(p.NotBefore):
		return *p, ErrTooEarly
	case subtle.ConstantTimeCompare([]byte(p.code), []byte(code)) != 1:
		if p.tries++; p.tries >= maxTries {
			d.pending = nil
		}
		return Recovery{}, ErrCode
	}
	d.pending = nil
	return *p, nil
}

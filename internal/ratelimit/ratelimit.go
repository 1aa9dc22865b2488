// Package ratelimit counts a token's calls per window against its rate
// limit, on one node or across the nodes of a cluster that share a store.
//
// Windows are fixed and aligned to UTC (a 1m window starts on the minute,
// a 24h one at midnight UTC), so every node agrees on when one starts.
//
// Across nodes the count is shared by leases. The store holds, per
// counter and window, how many calls the nodes have taken from the
// window's budget (store.Store.TakeBudget, one atomic take). A node takes
// a lease of a few calls at a time and answers calls from it in memory;
// when it runs low, it takes the next in the background. A node that
// holds nothing (its first call of a window, or calls outrunning the
// refills) allows on credit, at most one lease and no more than the store
// had left when it last looked, and the call is counted in its next take;
// only a node whose credit is spent too waits for the refill under way.
// So a call does not wait on the store, but for bursts beyond a lease.
//
// What that bounds, with a lease of limit/(20*nodes) calls (at least 1):
//   - Over: by the credit of nodes that had not yet learnt that others
//     took the rest, at most a lease a node and window: 5% of the limit
//     (a call a node, for limits under 20*nodes). A node alone never
//     goes over: no one else takes what it saw left.
//   - Under: by what nodes hold but do not spend before the window ends,
//     at most two leases a node: 10% of the limit. When calls spread over
//     the nodes each drains what it holds.
//   - A node cut off from the store, or whose store does not answer
//     within WaitForLease, keeps enforcing its local share: the fraction
//     of the window's takes that were its own (of the last window's
//     before it has seen any in this one; 1/nodes before it has seen any
//     at all), counted in memory. Once the
//     store answers again its next take includes the calls it allowed
//     meanwhile, so the store's count catches up.
//
// Close settles with the store what the node holds unspent and what it
// allowed on credit, so a stopped or restarted node leaves the store's
// count exact (a daily quota survives a restart). A node that crashes
// loses what it held, counted as spent (the strict side), and the calls
// it allowed on credit, at most a lease, uncounted.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// Limit is a rate limit: at most Requests calls per Window.
type Limit = store.RateLimit

// Windows are the window lengths a limit may have, by their names in
// policies, the API and the CLI.
var Windows = map[string]time.Duration{
	"1s":  time.Second,
	"1m":  time.Minute,
	"1h":  time.Hour,
	"24h": 24 * time.Hour,
}

// WindowName returns the name of a window length ("1m"), or "" for a
// length that is not one of Windows.
func WindowName(d time.Duration) string {
	for name, w := range Windows {
		if w == d {
			return name
		}
	}
	return ""
}

// Check returns why l cannot be a rate limit, or nil. The zero Limit
// (none) passes.
func Check(l Limit) error {
	if l.IsZero() && l.Window == 0 {
		return nil
	}
	if l.Requests <= 0 {
		return fmt.Errorf("rate limit requests must be a positive number, got %d", l.Requests)
	}
	if WindowName(l.Window) == "" {
		return fmt.Errorf("rate limit window must be one of 1s, 1m, 1h, 24h, got %v", l.Window)
	}
	return nil
}

// Parse reads a limit written as requests/window ("100/1m"); "" is no
// limit.
func Parse(s string) (Limit, error) {
	if s == "" {
		return Limit{}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	requests, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil {
		return Limit{}, fmt.Errorf("rate limit %q: want requests/window, as in 100/1m", s)
	}
	window, ok := Windows[w]
	if !ok {
		return Limit{}, fmt.Errorf("rate limit %q: window must be one of 1s, 1m, 1h, 24h", s)
	}
	l := Limit{Requests: requests, Window: window}
	return l, Check(l)
}

// Format writes l as Parse reads it; "" for no limit.
func Format(l Limit) string {
	if l.IsZero() {
		return ""
	}
	return strconv.FormatInt(l.Requests, 10) + "/" + WindowName(l.Window)
}

// Stricter returns the stricter of two limits: the one that allows fewer
// calls per second, the zero Limit counting as none. Of two equal rates
// the one with the shorter window wins, as it allows the smaller burst.
func Stricter(a, b Limit) Limit {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	}
	// Windows are at most a day (86,400 s) and requests an int64 small
	// enough to be meant, so the cross products fit.
	as, bs := int64(a.Window/time.Second), int64(b.Window/time.Second)
	if ra, rb := a.Requests*bs, b.Requests*as; ra != rb {
		if ra < rb {
			return a
		}
		return b
	}
	if a.Window <= b.Window {
		return a
	}
	return b
}

// Budgets is the store's side of the count: the one store method the
// limiter needs.
type Budgets interface {
	TakeBudget(ctx context.Context, b store.BudgetTake) (taken, total int64, err error)
}

// Options configure a Limiter.
type Options struct {
	// Budgets is the store the nodes share. Nil counts on this node
	// alone, in memory (and a restart forgets the count).
	Budgets Budgets
	// Nodes is how many nodes share Budgets; it sizes leases so that
	// what the nodes hold unspent stays within 10% of a limit. 0 means 2.
	Nodes int
	// Now is the clock; tests move it instead of sleeping.
	Now func() time.Time
	// WaitForLease bounds how long a call waits for a lease when its node
	// has spent what it holds and its credit; past it the node counts its
	// local share until the store answers. 0 means 250ms.
	WaitForLease time.Duration
	// OnStoreError is told about failed takes (for the operator's log).
	OnStoreError func(error)
}

// Decision is the limiter's answer for one call.
type Decision struct {
	Allowed bool
	Limit   Limit
	// Remaining is about how many more calls the window allows, cluster
	// wide, as this node last saw it.
	Remaining int64
	// Reset is how long until the window ends.
	Reset time.Duration
}

// Limiter counts calls against limits. It is safe for concurrent use.
type Limiter struct {
	budgets      Budgets
	nodes        int64
	now          func() time.Time
	leaseWait    time.Duration
	onStoreError func(error)

	mu       sync.RWMutex
	counters map[counterKey]*counter
	// refills carries counters whose lease runs low to Run.
	refills chan *counter
}

// counterKey names a counter: a token's calls under one limit. Calls of
// one token under different limits (a policy that gives GET and DELETE
// their own) count apart.
type counterKey struct {
	id    string
	limit Limit
}

// counter is one node's state of a counter in its current window.
type counter struct {
	// key is the store's name of the counter, made once.
	key   string
	limit Limit
	lease int64

	mu     sync.Mutex
	window time.Time // start of the current window
	// granted is what this node took from the window's budget, spent
	// what it allowed; granted-spent is what it holds.
	granted, spent int64
	// total is the window's total takes, as the last take saw it.
	total int64
	// exhausted: the store had nothing left for this window.
	exhausted bool
	// inflight, while a take is queued or under way in the background,
	// is closed when it is done.
	inflight chan struct{}
	// offline: the last take failed; calls are counted against share.
	offline bool
	// share is the fraction of a window's budget this node took, by the
	// last window it saw a take in; 1/nodes until it has seen one.
	share float64
}

// New returns a Limiter. Call Run to take leases in the background, and
// Close to give back what is held.
func New(o Options) *Limiter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Nodes <= 0 {
		o.Nodes = 2
	}
	if o.WaitForLease <= 0 {
		o.WaitForLease = 250 * time.Millisecond
	}
	if o.OnStoreError == nil {
		o.OnStoreError = func(error) {}
	}
	return &Limiter{
		budgets: o.Budgets, nodes: int64(o.Nodes), now: o.Now, leaseWait: o.WaitForLease,
		onStoreError: o.OnStoreError,
		counters:     make(map[counterKey]*counter),
		refills:      make(chan *counter, 1024),
	}
}

// Allow counts one call of the token id under limit l, which must pass
// Check and not be zero, and says whether it may pass. A call costs a map
// lookup and a lock, without an allocation or any I/O, except when its
// node has spent what it holds and its credit (one lease) while a refill
// is under way: then it waits for that refill, at most WaitForLease.
func (l *Limiter) Allow(ctx context.Context, id string, limit Limit) Decision {
	c := l.counter(id, limit)
	now := l.now()
	start := now.Truncate(limit.Window)
	reset := start.Add(limit.Window).Sub(now)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.window.Before(start) {
		c.roll(start, l.budgets == nil)
	}
	allowed := c.may()
	if !allowed && !c.exhausted && !c.offline {
		l.waitForLease(ctx, c)
		allowed = c.may()
	}
	if allowed {
		c.spent++
		if c.granted-c.spent <= c.lease/2 && !c.exhausted {
			l.refill(c)
		}
	}
	return Decision{Allowed: allowed, Limit: limit, Remaining: c.remaining(), Reset: reset}
}

// may says whether the node may allow one more call (c.mu held): from
// what it holds; or on credit, counted in its next take, of one lease at
// most and no more than the store had left when this node last took
// (others may have taken it since: that is the overshoot, a lease a node
// at most, and none on a node alone); or, cut off from the store, within
// its local share.
func (c *counter) may() bool {
	switch {
	case c.offline:
		return c.spent < max(c.granted, int64(math.Ceil(float64(c.limit.Requests)*c.share)))
	case c.exhausted:
		return c.spent < c.granted
	}
	return c.spent < c.granted+min(c.lease, c.limit.Requests-c.total)
}

// counter returns the counter of id under limit, made on first use.
func (l *Limiter) counter(id string, limit Limit) *counter {
	k := counterKey{id, limit}
	l.mu.RLock()
	c, ok := l.counters[k]
	l.mu.RUnlock()
	if ok {
		return c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok = l.counters[k]; !ok {
		c = &counter{
			key:   id + "/" + Format(limit),
			limit: limit,
			lease: max(1, limit.Requests/(20*l.nodes)),
			share: 1 / float64(l.nodes),
		}
		l.counters[k] = c
	}
	return c
}

// roll starts a new window. What the node held of the last one is gone
// with it: the store counted it as taken there. A node alone holds the
// whole budget.
func (c *counter) roll(start time.Time, alone bool) {
	if c.granted > 0 && c.total > 0 {
		c.share = min(1, float64(c.granted)/float64(c.total))
	}
	c.window, c.granted, c.spent, c.total = start, 0, 0, 0
	c.exhausted, c.offline = false, false
	if alone {
		c.granted, c.total, c.exhausted = c.limit.Requests, c.limit.Requests, true
	}
}

// cutOff starts counting the local share (c.mu held). The share is the
// fraction of this window's takes that were this node's, when it has
// seen any, else the last window's.
func (c *counter) cutOff() {
	c.offline = true
	if c.granted > 0 && c.total > 0 {
		c.share = min(1, float64(c.granted)/float64(c.total))
	}
}

// remaining is the window's calls left, cluster wide, as this node knows:
// what the store has not handed out and what this node holds.
func (c *counter) remaining() int64 {
	if c.offline {
		return max(0, int64(math.Ceil(float64(c.limit.Requests)*c.share))-c.spent)
	}
	return max(0, c.limit.Requests-c.total) + max(0, c.granted-c.spent)
}

// waitForLease waits (c.mu held, released meanwhile) for the refill under
// way, or takes a lease itself when none is (the queue was full). A store
// that does not answer within WaitForLease leaves the node counting its
// local share until it does.
func (l *Limiter) waitForLease(ctx context.Context, c *counter) {
	ctx, cancel := context.WithTimeout(ctx, l.leaseWait)
	defer cancel()
	if ch := c.inflight; ch != nil {
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if c.inflight == ch && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.cutOff()
			l.onStoreError(fmt.Errorf("rate limit %s of %s: no lease within %s", Format(c.limit), c.key, l.leaseWait))
		}
		return
	}
	b := c.ask()
	taken, total, err := l.budgets.TakeBudget(ctx, b)
	l.apply(c, b, taken, total, err)
}

// ask is the take that brings what the node holds up to two leases
// (c.mu held); it includes the calls allowed on credit or while the store
// could not be reached, so the store's count catches up with them.
func (c *counter) ask() store.BudgetTake {
	return store.BudgetTake{
		Key: c.key, Window: c.window, Want: max(1, 2*c.lease-(c.granted-c.spent)), Limit: c.limit.Requests,
		KeepUntil: c.window.Add(c.limit.Window),
	}
}

// apply records the store's answer to b (c.mu held). An answer for a
// window that has ended since counts for nothing here.
func (l *Limiter) apply(c *counter, b store.BudgetTake, taken, total int64, err error) {
	if !c.window.Equal(b.Window) {
		return
	}
	if err != nil {
		c.cutOff()
		l.onStoreError(fmt.Errorf("rate limit %s of %s: taking a lease: %w", Format(c.limit), c.key, err))
		return
	}
	c.offline = false
	c.granted += taken
	c.total = total
	if taken < b.Want {
		c.exhausted = true
	}
}

// refill queues c for a background take (c.mu held), unless one is
// queued already. A full queue drops it: a call that finds the node
// without a lease or credit takes one itself.
func (l *Limiter) refill(c *counter) {
	if c.inflight != nil || l.budgets == nil {
		return
	}
	ch := make(chan struct{})
	select {
	case l.refills <- c:
		c.inflight = ch
	default:
	}
}

// Run takes the leases Allow asked for, and forgets counters whose window
// has ended, until ctx is done.
func (l *Limiter) Run(ctx context.Context) {
	var workers sync.WaitGroup
	defer workers.Wait()
	for range refillWorkers {
		workers.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case c := <-l.refills:
					l.refillNow(ctx, c)
				}
			}
		})
	}
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			l.sweep()
		}
	}
}

// refillWorkers is how many takes may be under way at once: a shared
// store answers them in parallel, and a slow one does not hold up the
// refills of every other counter.
const refillWorkers = 4

// backgroundTake bounds a take made in the background, so a store that
// hangs does not stop every other counter's refills for long.
const backgroundTake = 5 * time.Second

// refillNow takes c's next lease. The store is asked without c.mu held,
// so calls go on being answered from what the node holds meanwhile.
func (l *Limiter) refillNow(ctx context.Context, c *counter) {
	c.mu.Lock()
	current := c.window.Equal(l.now().Truncate(c.limit.Window))
	b := c.ask()
	c.mu.Unlock()
	var (
		taken, total int64
		err          error
	)
	if current {
		ctx, cancel := context.WithTimeout(ctx, backgroundTake)
		taken, total, err = l.budgets.TakeBudget(ctx, b)
		cancel()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if current {
		l.apply(c, b, taken, total, err)
	}
	close(c.inflight)
	c.inflight = nil
}

// sweep forgets the counters whose window has ended: what they held
// counts for nothing now.
func (l *Limiter) sweep() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, c := range l.counters {
		c.mu.Lock()
		ended := !now.Before(c.window.Add(c.limit.Window))
		c.mu.Unlock()
		if ended {
			delete(l.counters, k)
		}
	}
}

// Close settles with the store, for windows still running, what this
// node holds and has not spent (given back) and what it allowed beyond
// what it took (taken), so the store's count is the calls allowed. Call
// it once Run has returned.
func (l *Limiter) Close(ctx context.Context) error {
	if l.budgets == nil {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	counters := make([]*counter, 0, len(l.counters))
	for _, c := range l.counters {
		counters = append(counters, c)
	}
	l.mu.Unlock()
	var errs []error
	for _, c := range counters {
		c.mu.Lock()
		// What it holds goes back; what it allowed on credit or cut off
		// is taken, so the store counts exactly the calls allowed.
		held := c.granted - c.spent
		if held != 0 && now.Before(c.window.Add(c.limit.Window)) {
			taken, _, err := l.budgets.TakeBudget(ctx, store.BudgetTake{
				Key: c.key, Window: c.window, Want: -held, Limit: c.limit.Requests,
				KeepUntil: c.window.Add(c.limit.Window),
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("rate limit %s of %s: settling %d calls: %w", Format(c.limit), c.key, held, err))
			} else {
				c.granted += taken
			}
		}
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

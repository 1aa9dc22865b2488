package caddymodule

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/freshness"
	"github.com/tokengate/caddy-tokengate/store"
)

// runtimes holds, per opened store, what outlives one config: the store
// handle, the change listener and the apps using them. A reload provisions
// the new config before the old one stops, so for a moment two apps run on
// one store: they find each other here (a token changed through either is
// dropped from the caches of both), and the store is opened once (bbolt
// locks its file; opening it a second time would block) and closed when
// the last config lets go of it.
var runtimes = caddy.NewUsagePool()

// runtime is one entry of runtimes.
type runtime struct {
	store store.Backend

	// breakGlass holds this node's pending recovery of lost bootstrap
	// secrets, across config reloads.
	breakGlass breakglass.Desk

	mu   sync.Mutex
	apps []*App // provisioned and not cleaned up, oldest first

	// freshness is how far behind the token changes of other nodes this
	// node may be (see staleness.go).
	freshness *freshness.Tracker
	// clock is the newest attached app's clock, read without the lock:
	// the freshness tracker asks it on every call.
	clock atomic.Pointer[func() time.Time]

	stopWatch context.CancelFunc
	watching  sync.WaitGroup
}

// newRuntime takes over s and follows its change feed.
func newRuntime(s store.Backend) *runtime {
	rt := &runtime{store: s}
	rt.freshness = freshness.New(freshness.DefaultBound, rt.clockNow)
	if _, shared := s.(store.Notifier); !shared {
		// Current from the first call on, not from when the feed's
		// goroutine first runs.
		rt.CaughtUp(store.Forever)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt.stopWatch = cancel
	rt.watching.Go(func() { followChanges(ctx, s, rt) })
	return rt
}

// attach adds a to the apps whose caches follow token changes.
func (rt *runtime) attach(a *App) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.clock.Store(&a.now)
	rt.apps = append(rt.apps, a)
}

// detach removes a; its gate is about to be closed.
func (rt *runtime) detach(a *App) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for i, x := range rt.apps {
		if x == a {
			rt.apps = append(rt.apps[:i], rt.apps[i+1:]...)
			return
		}
	}
}

// forget drops a token changed on this node from every app's caches.
func (rt *runtime) forget(t *store.Token) {
	rt.mu.Lock()
	for _, a := range rt.apps {
		a.gate.Forget(t)
	}
	rt.mu.Unlock()
	metrics.Invalidated("local", t, rt.now())
}

// forgetByID drops a token another node changed. It needs no store: a
// notification handled just as the store goes away must not cost every
// other cached answer. The store is read afterwards only to time the
// invalidation of a revocation for the metrics.
func (rt *runtime) forgetByID(id string) {
	rt.mu.Lock()
	for _, a := range rt.apps {
		a.gate.ForgetID(id)
	}
	rt.mu.Unlock()
	dropped := rt.now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t, err := rt.store.Get(ctx, id)
	if err != nil {
		t = &store.Token{ID: id}
	}
	metrics.Invalidated("notify", t, dropped)
}

// forgetAll empties every app's caches when notifications may have been
// missed.
func (rt *runtime) forgetAll() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, a := range rt.apps {
		a.gate.ForgetAll()
	}
	// The newest app logs: an older one's logger may belong to a config
	// on its way out.
	if n := len(rt.apps); n > 0 {
		rt.apps[n-1].logger.Warn("token change notifications may have been missed; dropping all cached tokens and decisions")
	}
	metrics.Reset()
}

// clockNow is the newest attached app's clock, or the system's.
func (rt *runtime) clockNow() time.Time {
	if now := rt.clock.Load(); now != nil {
		return (*now)()
	}
	return time.Now()
}

// now is the clock of the newest app (the apps of one process share one
// clock), or the system's when none is attached.
func (rt *runtime) now() time.Time {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if n := len(rt.apps); n > 0 {
		return rt.apps[n-1].now()
	}
	return time.Now()
}

// Destruct stops the listener and closes the store, once no config uses
// them.
func (rt *runtime) Destruct() error {
	if rt.stopWatch != nil {
		rt.stopWatch()
		rt.watching.Wait()
	}
	return rt.store.Close()
}

// currentApp is the app the admin endpoint talks to: the one of the
// config Caddy is running (during a reload, the old one until the new
// one has started), or nil when that config has none.
func currentApp() *App {
	app, err := caddy.ActiveContext().AppIfConfigured("tokengate")
	if err != nil {
		return nil
	}
	a, _ := app.(*App)
	return a
}

var _ caddy.Destructor = (*runtime)(nil)

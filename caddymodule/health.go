package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// The probes of the management site, answered without a credential so
// that a kubelet or a load balancer can ask:
//
//	GET /healthz   200 while the process serves HTTP (liveness)
//	GET /readyz    200 when the node can decide calls, else 503 naming
//	               what is not ready: store, policy, audit, change_feed
//
// Other methods on these paths go the way of any management call
// (authenticated, then route_unknown), so a probe path is no way around
// the credential check.
const (
	livenessPath  = "/healthz"
	readinessPath = "/readyz"
)

// storePingTimeout bounds the store read of a readiness check or a
// scrape: a store slower than this is not serving calls either.
const storePingTimeout = 2 * time.Second

// storeProbeID is read to ask the store whether it answers. No token has
// it (ids are tok_ and base62), so a store that answers says ErrNotFound.
const storeProbeID = "tok_-readiness-probe-"

// The parts /readyz names when they are not ready.
const (
	partStore      = "store"
	partPolicy     = "policy"
	partAudit      = "audit"
	partChangeFeed = "change_feed"
)

// healthBody is the probes' answer. It holds names only: no error text,
// which could carry a host name or a path.
type healthBody struct {
	Status   string   `json:"status"`
	NotReady []string `json:"not_ready,omitempty"`
}

// serveProbe answers /healthz and /readyz for GET and HEAD, and reports
// whether r was one of them.
func (h *AdminHandler) serveProbe(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch r.URL.Path {
	case livenessPath:
		writeHealth(w, http.StatusOK, healthBody{Status: "live"})
	case readinessPath:
		if notReady := h.app.notReady(r.Context()); len(notReady) > 0 {
			writeHealth(w, http.StatusServiceUnavailable, healthBody{Status: "not_ready", NotReady: notReady})
		} else {
			writeHealth(w, http.StatusOK, healthBody{Status: "ready"})
		}
	default:
		return false
	}
	return true
}

func writeHealth(w http.ResponseWriter, status int, body healthBody) {
	raw, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(raw, '\n'))
}

// notReady names the parts that keep the node from deciding calls as it
// should: a store that does not answer, no policy, audit lines that
// cannot be written (allowed calls are held), or a change feed that is
// down (revocations made on other nodes would not reach this one's
// caches).
func (a *App) notReady(ctx context.Context) []string {
	var parts []string
	if !a.storeUp(ctx) {
		parts = append(parts, partStore)
	}
	if a.engine == nil || a.engine.Revision() == "" {
		parts = append(parts, partPolicy)
	}
	if !a.audit.Health().Healthy() {
		parts = append(parts, partAudit)
	}
	if live, _ := a.changeFeed(); !live {
		parts = append(parts, partChangeFeed)
	}
	return parts
}

// storeProbeReuse is how long one answer of the store is reused: /readyz
// takes no credential, so a flood of probes (or of scrapes) must not
// become a flood of store reads that starves the calls.
const storeProbeReuse = time.Second

// storeProbe remembers the last answer of the store to storeUp. Its mutex
// is held during a read, so probes arriving meanwhile wait for that read
// instead of sending their own: at most one read per storeProbeReuse.
type storeProbe struct {
	mu sync.Mutex
	at time.Time
	up bool
}

// storeUp reads a token no one has: a store that answers "not found"
// within storePingTimeout is up. The answer is reused for
// storeProbeReuse.
func (a *App) storeUp(ctx context.Context) bool {
	p := a.storeProbe
	p.mu.Lock()
	defer p.mu.Unlock()
	now := a.now()
	if since := now.Sub(p.at); !p.at.IsZero() && since >= 0 && since < storeProbeReuse {
		return p.up
	}
	ctx, cancel := context.WithTimeout(ctx, storePingTimeout)
	defer cancel()
	_, err := a.store.Get(ctx, storeProbeID)
	p.at, p.up = now, errors.Is(err, store.ErrNotFound)
	return p.up
}

// changeFeed reports whether this node is current with the token changes
// made on other nodes (within max_staleness), and how far behind it may
// be. A store no other node writes (bolt) is never behind.
func (a *App) changeFeed() (live bool, lag time.Duration) {
	return a.fresh(), a.rt.freshness.Lag()
}

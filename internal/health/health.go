// Package health answers the probes of a gateway node, without a
// credential, so that a kubelet or a load balancer can ask:
//
//	GET /healthz   200 while the process serves HTTP (liveness)
//	GET /readyz    200 when the node can decide calls, else 503 naming
//	               what is not ready: store, policy, audit, change_feed
//
// Other methods on these paths go the way of any management call
// (authenticated, then route_unknown), so a probe path is no way around
// the credential check.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// The probes' paths.
const (
	LivenessPath  = "/healthz"
	ReadinessPath = "/readyz"
)

// The parts /readyz names when they are not ready.
const (
	PartStore      = "store"
	PartPolicy     = "policy"
	PartAudit      = "audit"
	PartChangeFeed = "change_feed"
)

// Body is the probes' answer. It holds names only: no error text, which
// could carry a host name or a path.
type Body struct {
	Status   string   `json:"status"`
	NotReady []string `json:"not_ready,omitempty"`
}

// Serve answers /healthz and /readyz for GET and HEAD, and reports
// whether r was one of them. notReady names the parts that are not ready.
func Serve(w http.ResponseWriter, r *http.Request, notReady func(context.Context) []string) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch r.URL.Path {
	case LivenessPath:
		write(w, http.StatusOK, Body{Status: "live"})
	case ReadinessPath:
		if parts := notReady(r.Context()); len(parts) > 0 {
			write(w, http.StatusServiceUnavailable, Body{Status: "not_ready", NotReady: parts})
		} else {
			write(w, http.StatusOK, Body{Status: "ready"})
		}
	default:
		return false
	}
	return true
}

func write(w http.ResponseWriter, status int, body Body) {
	raw, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(raw, '\n'))
}

// Checks are the questions that decide whether a node is ready.
type Checks struct {
	// StoreUp: the token store answers.
	StoreUp func(context.Context) bool
	// PolicyLoaded: a policy is in force.
	PolicyLoaded func() bool
	// AuditWritable: audit lines are written (else allowed calls are
	// held).
	AuditWritable func() bool
	// ChangeFeedLive: the node is current with the token changes of
	// other nodes (else a revocation made elsewhere would not reach this
	// node's caches).
	ChangeFeedLive func() bool
}

// NotReady names the parts that keep the node from deciding calls as it
// should, in a fixed order.
func (c Checks) NotReady(ctx context.Context) []string {
	var parts []string
	if !c.StoreUp(ctx) {
		parts = append(parts, PartStore)
	}
	if !c.PolicyLoaded() {
		parts = append(parts, PartPolicy)
	}
	if !c.AuditWritable() {
		parts = append(parts, PartAudit)
	}
	if !c.ChangeFeedLive() {
		parts = append(parts, PartChangeFeed)
	}
	return parts
}

// storePingTimeout bounds the store read of a readiness check or a
// scrape: a store slower than this is not serving calls either.
const storePingTimeout = 2 * time.Second

// storeProbeID is read to ask the store whether it answers. No token has
// it (ids are tok_ and base62), so a store that answers says ErrNotFound.
const storeProbeID = "tok_-readiness-probe-"

// StoreProbeReuse is how long one answer of the store is reused: /readyz
// takes no credential, so a flood of probes (or of scrapes) must not
// become a flood of store reads that starves the calls.
const StoreProbeReuse = time.Second

// StoreProbe asks a store whether it answers, and remembers the answer
// for StoreProbeReuse. Its mutex is held during a read, so probes
// arriving meanwhile wait for that read instead of sending their own: at
// most one read per StoreProbeReuse. The zero value is ready to use.
type StoreProbe struct {
	mu sync.Mutex
	at time.Time
	up bool
}

// Up reads a token no one has from b: a store that answers "not found"
// within 2s is up. now is the caller's clock.
func (p *StoreProbe) Up(ctx context.Context, b store.Backend, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if since := now.Sub(p.at); !p.at.IsZero() && since >= 0 && since < StoreProbeReuse {
		return p.up
	}
	ctx, cancel := context.WithTimeout(ctx, storePingTimeout)
	defer cancel()
	_, err := b.Get(ctx, storeProbeID)
	p.at, p.up = now, errors.Is(err, store.ErrNotFound)
	return p.up
}

package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// work is the background work of one started node.
type work struct {
	ctx     context.Context
	cancel  context.CancelFunc
	running sync.WaitGroup
}

// Start opens a store that opens on first use and runs the background
// work: the gate's usage batches and rate-limit leases, the watch of a
// policy folder or the polling of a bundle, one look at each identity
// provider, the log of the audit health, and the webhooks. More work
// joins with Go; Stop ends it all.
func (p *Parts) Start() error {
	// A store that opens on first use (bolt, so that validation needs no
	// file lock) is opened here, so that a held lock fails the start.
	if o, ok := p.Store.(interface{ Open() error }); ok {
		if err := o.Open(); err != nil {
			return fmt.Errorf("opening token store: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.work = &work{ctx: ctx, cancel: cancel}
	p.Go(p.Gate.Run)
	if p.bundle == nil && p.opts.PolicyDir != "" {
		if err := p.Engine.Watch(ctx, p.opts.PolicyDir, p.policyReloaded); err != nil {
			p.Stop()
			return err
		}
	}
	p.Go(p.discoverIssuers)
	p.Go(p.watchAudit)
	p.startServices()
	return nil
}

// Go runs f until Stop, in its own goroutine. Start must have succeeded.
func (p *Parts) Go(f func(context.Context)) {
	w := p.work
	w.running.Go(func() { f(w.ctx) })
}

// Stop ends the background work and waits for it; the gate flushes its
// usage records and settles its rate-limit leases on the way out. The
// webhooks stop last, so that what the stopped work published is still
// delivered.
func (p *Parts) Stop() {
	if p.work != nil {
		p.work.cancel()
		p.work.running.Wait()
	}
	if p.Webhooks != nil {
		p.Webhooks.Stop()
	}
}

// discoverIssuers fetches each issuer's discovery document once at start,
// so that a typo or an unreachable provider shows in the log at once. A
// failure does not stop the node: the verifiers retry on later calls and
// refuse tokens with issuer_unavailable meanwhile (fail closed), and a
// provider that comes back is used without a reload.
func (p *Parts) discoverIssuers(ctx context.Context) {
	for _, v := range p.IdentityProviders() {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := v.Discover(dctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			p.opts.Logger.Warn("identity provider not reachable; its tokens are refused until it is",
				zap.String("issuer", v.Issuer()), zap.Error(err))
		}
	}
}

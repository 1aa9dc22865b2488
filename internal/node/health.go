package node

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/health"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// auditHealthLogEvery is how often a change of the audit health is
// looked for, to be logged. The hold itself needs no look: it reads the
// health, which the failing write itself updates.
const auditHealthLogEvery = time.Second

// NotReady names the parts that keep the node from deciding calls, for
// /readyz (internal/health).
func (p *Parts) NotReady(ctx context.Context) []string {
	return health.Checks{
		StoreUp:        p.StoreUp,
		PolicyLoaded:   func() bool { return p.Engine != nil && p.Engine.Revision() != "" },
		AuditWritable:  p.AuditWritable,
		ChangeFeedLive: p.changeFeedLive,
	}.NotReady(ctx)
}

// StoreUp reports whether the store answers, reusing an answer for a
// second.
func (p *Parts) StoreUp(ctx context.Context) bool {
	return p.storeProbe.Up(ctx, p.Store, p.opts.Now())
}

// AuditWritable reports whether audit lines are written.
func (p *Parts) AuditWritable() bool { return p.Audit.Health().Healthy() }

// changeFeedLive reports whether this node is current with the token
// changes made on other nodes (within max_staleness).
func (p *Parts) changeFeedLive() bool {
	return p.opts.Fresh == nil || p.opts.Fresh()
}

// ChangeLag is how far behind the token changes of other nodes this node
// may be. A store no other node writes (bolt) is never behind.
func (p *Parts) ChangeLag() time.Duration {
	if p.opts.ChangeLag == nil {
		return 0
	}
	return p.opts.ChangeLag()
}

// IdentityProviders are the node's identity providers: the oidc issuer
// people sign in with and the workload issuers.
func (p *Parts) IdentityProviders() []*identity.Verifier {
	var vs []*identity.Verifier
	if p.People != nil {
		vs = append(vs, p.People)
	}
	if p.Workloads != nil {
		vs = append(vs, p.Workloads.Verifiers()...)
	}
	return vs
}

// auditHold is the gate's Hold: while audit lines cannot be written it
// answers audit_unavailable, so an allowed call gets a 503 before it spends
// a use or reaches the upstream, unless the operator set audit_fail_open.
// The refusal's own line is still tried: when it gets through, the sink
// works again and the next call passes.
func (p *Parts) auditHold() string {
	if p.opts.AuditFailOpen || p.Audit.Health().Healthy() {
		return ""
	}
	return reason.AuditUnavailable
}

// watchAudit logs each change of the audit health, so that the request
// path itself never logs anything for it.
//
// The health hears of failed writes from zap, whatever the writer. With
// the tokengate_audit writer that is all there is to know: it follows its
// path after rm or a move and fails a write it cannot make. Caddy's own
// writers do not: a deleted or moved-away file keeps taking lines (README,
// "What can still be lost").
func (p *Parts) watchAudit(ctx context.Context) {
	health := p.Audit.Health()
	logger := p.opts.Logger
	health.Watch(ctx, auditHealthLogEvery, func(healthy bool) {
		switch {
		case healthy:
			logger.Info("audit lines are written again; allowed calls pass")
		case p.opts.AuditFailOpen:
			logger.Error("audit lines cannot be written; audit_fail_open lets allowed calls through unrecorded", zap.Error(health.Err()))
		default:
			logger.Error("audit lines cannot be written; refusing allowed calls with 503 audit_unavailable", zap.Error(health.Err()))
		}
	})
}

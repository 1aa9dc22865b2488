package caddymodule

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// auditHealthLogEvery is how often a change of the audit health is
// looked for, to be logged. The hold itself needs no look: it reads the
// health, which the failing write itself updates.
const auditHealthLogEvery = time.Second

// auditHold is the gate's Hold: while audit lines cannot be written it
// answers audit_unavailable, so an allowed call gets a 503 before it spends
// a use or reaches the upstream, unless the operator set audit_fail_open.
// The refusal's own line is still tried: when it gets through, the sink
// works again and the next call passes.
func (a *App) auditHold() string {
	if a.AuditFailOpen || a.audit.Health().Healthy() {
		return ""
	}
	return reason.AuditUnavailable
}

// watchAudit logs each change of the audit health to Caddy's log, so that
// the request path itself never logs anything for it.
//
// The health hears of failed writes from zap, whatever the writer. With
// the tokengate_audit writer that is all there is to know: it follows its
// path after rm or a move and fails a write it cannot make. Caddy's own
// writers do not: a deleted or moved-away file keeps taking lines (README,
// "What can still be lost").
func (a *App) watchAudit(ctx context.Context) {
	health := a.audit.Health()
	health.Watch(ctx, auditHealthLogEvery, func(healthy bool) {
		switch {
		case healthy:
			a.logger.Info("audit lines are written again; allowed calls pass")
		case a.AuditFailOpen:
			a.logger.Error("audit lines cannot be written; audit_fail_open lets allowed calls through unrecorded", zap.Error(health.Err()))
		default:
			a.logger.Error("audit lines cannot be written; refusing allowed calls with 503 audit_unavailable", zap.Error(health.Err()))
		}
	})
}

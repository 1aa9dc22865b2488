package node

import (
	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
)

// Management is what the management API acts on beyond the parts.
type Management struct {
	// BreakGlass is this node's pending recovery of lost bootstrap
	// secrets (it outlives a config); BreakGlassDir is where its
	// confirmation codes are written.
	BreakGlass    *breakglass.Desk
	BreakGlassDir string
	// ExchangeLimit brakes the token exchange, which takes no
	// credential, per client address; nil takes the management API's
	// defaults.
	ExchangeLimit *addrlimit.AttemptLimit
}

// ManagementNode is what the management API acts on in this node.
func (p *Parts) ManagementNode(m Management) *mgmtapi.Node {
	o := p.opts
	attempts, window := m.ExchangeLimit.Or(mgmtapi.DefaultExchangeAttempts, mgmtapi.DefaultExchangeWindow)
	n := &mgmtapi.Node{
		Manage: p.Manage, Audit: p.Audit, Store: p.Store, Logger: o.Logger, Now: o.Now,
		MaxTTL: p.Lifecycle.MaxTTL, ParseDuration: o.ParseDuration,
		AuditFailOpen: o.AuditFailOpen, AuditHold: p.auditHold,
		BreakGlass:    m.BreakGlass,
		BreakGlassDir: m.BreakGlassDir,
		People:        p.People, Workloads: p.Workloads,
		ExchangeBrake: addrlimit.New(attempts, window, o.Now),
		Leaks:         p.Leaks,
	}
	if o.OIDC != nil {
		n.SignIn = &api.SignInConfig{Issuer: o.OIDC.Issuer, ClientID: o.OIDC.Audience}
	}
	return n
}

package node

import (
	"time"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
)

// Management is what the management API acts on beyond the parts.
type Management struct {
	// BreakGlass is this node's pending recovery of lost bootstrap
	// secrets (it outlives a config); BreakGlassDir is where its
	// confirmation codes are written.
	BreakGlass    *breakglass.Desk
	BreakGlassDir string
	// ExchangeAttempts per ExchangeWindow and client address brake the
	// token exchange, which takes no credential.
	ExchangeAttempts int
	ExchangeWindow   time.Duration
	// Leaks is the intake of secrets found in the wild.
	Leaks *leaks.Intake
}

// ManagementNode is what the management API acts on in this node.
func (p *Parts) ManagementNode(m Management) *mgmtapi.Node {
	o := p.opts
	n := &mgmtapi.Node{
		Manage: p.Manage, Audit: p.Audit, Store: p.Store, Logger: o.Logger, Now: o.Now,
		MaxTTL: p.Lifecycle.MaxTTL, ParseDuration: o.ParseDuration,
		AuditFailOpen: o.AuditFailOpen, AuditHold: p.auditHold,
		BreakGlass:    m.BreakGlass,
		BreakGlassDir: m.BreakGlassDir,
		People:        p.People, Workloads: p.Workloads,
		ExchangeBrake: addrlimit.New(m.ExchangeAttempts, m.ExchangeWindow, o.Now),
		Leaks:         m.Leaks,
	}
	if o.OIDC != nil {
		n.SignIn = &api.SignInConfig{Issuer: o.OIDC.Issuer, ClientID: o.OIDC.Audience}
	}
	return n
}

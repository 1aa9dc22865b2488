package node

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/console"
	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// The node's services beyond the request path and the management API's
// core: the webhooks and their sweep of lapsed requests, the intake of
// leaked secrets, the web console, and the polling of a policy bundle.

// assembleServices builds the webhooks' dispatcher and the leak intake,
// and tells the management service where they and the console are.
func (p *Parts) assembleServices(o Options) error {
	expand := func(s string) (string, error) { return o.Expand(s, true, true) }
	var err error
	if p.Webhooks, err = notify.FromConfig(o.Webhooks, expand, notify.Options{
		Logger: o.Logger.Named("webhook"), Outcome: o.OnWebhookOutcome,
	}); err != nil {
		return err
	}
	if p.Webhooks != nil {
		p.Manage.Events = p.Webhooks
	}
	if p.Manage.ConsoleURL, err = o.Console.BaseURL(); err != nil {
		return err
	}
	p.Leaks, err = leaks.FromConfig(o.Leaks, expand, leaks.Parts{
		Ledger:     leaks.StoreLedger{Store: o.Store, Hasher: p.Hasher, Previous: p.PreviousHasher, Exposer: p.Manage},
		Trail:      p.Manage,
		Now:        o.Now,
		ClientAddr: o.ClientAddr,
		OnError: func(route string, err error) {
			o.Logger.Error("leak intake failed", zap.String("route", route), zap.Error(err))
		},
	})
	return err
}

// startServices runs the bundle's polling and the webhooks' delivery and
// sweep; Stop ends them with the rest of the work.
func (p *Parts) startServices() {
	if p.bundle != nil {
		p.Go(func(ctx context.Context) {
			p.Engine.PollBundle(ctx, p.bundle, p.opts.PolicyBundle.PollEvery(p.opts.PolicyDir), p.policyReloaded)
		})
	}
	if p.Webhooks != nil {
		p.Webhooks.Start()
		p.Go(func(ctx context.Context) {
			p.Manage.SweepLapses(ctx, manage.LapseSweepInterval, func(err error) {
				p.opts.Logger.Error("looking for lapsed requests", zap.Error(err))
			})
		})
	}
}

// policyReloaded logs a change of the policy (the folder's or the
// bundle's), put in force or refused, and counts it. A bundle that could
// not be fetched is no policy refused: it is logged, not counted.
func (p *Parts) policyReloaded(rev string, err error) {
	if p.opts.OnPolicyReload != nil && !policy.IsFetchFailure(err) {
		p.opts.OnPolicyReload(err == nil)
	}
	source := zap.String("policy", p.PolicySource())
	if err != nil {
		what := "policy change"
		if p.bundle != nil {
			what = "policy bundle"
		}
		p.opts.Logger.Error(what+" refused; previous policy stays in force",
			source, zap.String("policy_rev", p.Engine.Revision()), zap.Error(err))
		return
	}
	p.opts.Logger.Info("policy reloaded", source, zap.String("policy_rev", rev))
}

// Console makes the node's web console, or nil when there is none: no
// oidc issuer, or a store that keeps no sessions (said in the log).
func (p *Parts) Console() (*console.Console, error) {
	if p.People == nil {
		return nil, nil
	}
	o := p.opts
	c, err := o.Console.Assemble(console.Parts{
		Store: p.Store, Actions: p.Manage,
		Issuer: o.OIDC.Issuer, ClientID: o.OIDC.Audience, Verifier: p.People, Now: o.Now,
	})
	if errors.Is(err, console.ErrNoPeopleStore) {
		o.Logger.Warn("no web console: " + err.Error())
		return nil, nil
	}
	return c, err
}

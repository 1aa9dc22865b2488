package caddymodule

import (
	"cmp"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/token"
)

// unmarshalLeaks reads `leaks { ... }`; the dispenser is on "leaks".
func (a *App) unmarshalLeaks(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	l := cmp.Or(a.Leaks, &leaks.Config{})
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "github_keys":
			err = oneArg(d, &l.GitHubKeys)
		case "webhook_secret":
			err = oneArg(d, &l.WebhookSecret)
		case "limit":
			l.Limit, err = attemptLimitArgs(d, "60 1m")
		default:
			err = d.Errf("unrecognized leaks subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	a.Leaks = l
	return nil
}

// provisionLeaks builds the intake of the leaks block (leaks.FromConfig)
// from the node's parts.
func (a *App) provisionLeaks(hasher, previous *token.Hasher) (*leaks.Intake, error) {
	return leaks.FromConfig(a.Leaks, expandPlaceholders, leaks.Parts{
		Ledger:     leaks.StoreLedger{Store: a.store, Hasher: hasher, Previous: previous, Exposer: a.manage},
		Trail:      a.manage,
		Now:        a.now,
		ClientAddr: caddyHost{}.ClientIP,
		OnError: func(route string, err error) {
			a.logger.Error("leak intake failed", zap.String("route", route), zap.Error(err))
		},
	})
}

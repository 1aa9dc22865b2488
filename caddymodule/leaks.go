package caddymodule

import (
	"cmp"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/leaks"
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

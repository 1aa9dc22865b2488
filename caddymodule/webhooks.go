package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/notify"
)

// unmarshalWebhook reads `webhook <url> { ... }`; the dispenser is on
// "webhook".
func (a *App) unmarshalWebhook(d *caddyfile.Dispenser) error {
	var w notify.HookConfig
	if err := oneArg(d, &w.URL); err != nil {
		return err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "secret":
			err = oneArg(d, &w.Secret)
		case "events":
			err = appendArgs(d, &w.Events)
		default:
			err = d.Errf("unrecognized webhook subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if w.Secret == "" {
		return d.Err("webhook needs a secret: `secret {env.TOKENGATE_WEBHOOK_SECRET}` in its block")
	}
	a.Webhooks = append(a.Webhooks, w)
	return nil
}

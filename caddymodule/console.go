package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/console"
)

// unmarshalConsole reads `console { url; client_secret; idle_timeout;
// session_lifetime }`; the dispenser is on "console".
func (a *App) unmarshalConsole(d *caddyfile.Dispenser) error {
	if a.Console != nil {
		return d.Err("console is set twice")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	c := new(console.Settings)
	a.Console = c
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "url":
			err = oneArg(d, &c.URL)
		case "client_secret":
			err = oneArg(d, &c.ClientSecret)
		case "idle_timeout":
			err = durationInto(d, &c.IdleTimeout, 0)
		case "session_lifetime":
			err = durationInto(d, &c.SessionLifetime, 0)
		default:
			err = d.Errf("unknown console option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

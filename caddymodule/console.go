package caddymodule

import (
	"errors"

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

// newConsole makes the app's console, or nil when there is none: no oidc
// issuer, or a store that keeps no sessions (said in the log).
func (a *App) newConsole() (*console.Console, error) {
	if a.people == nil {
		return nil, nil
	}
	c, err := a.Console.Assemble(console.Parts{
		Store: a.store, Actions: a.manage,
		Issuer: a.OIDC.Issuer, ClientID: a.OIDC.Audience, Verifier: a.people, Now: a.now,
	})
	if errors.Is(err, console.ErrNoPeopleStore) {
		a.logger.Warn("no web console: " + err.Error())
		return nil, nil
	}
	return c, err
}

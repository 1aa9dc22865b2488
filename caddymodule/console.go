package caddymodule

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/console"
	"github.com/tokengate/caddy-tokengate/internal/notify"
)

// ConsoleConfig sets up the web console, which tokengate_admin serves at
// /console/ whenever the app has an oidc issuer.
type ConsoleConfig struct {
	// URL is the console's one address (https://gateway.example.com):
	// the relying party of people's security keys and where webhook
	// events link to. Empty: each host name the console is reached at
	// is its own, and events carry no link.
	URL string `json:"url,omitempty"`
	// ClientSecret, when the identity provider treats the console as a
	// confidential client; empty for the public client the CLI uses.
	ClientSecret string `json:"client_secret,omitempty"`
	// IdleTimeout ends a session unused this long (default 30m);
	// SessionLifetime ends it this long after sign-in (default 12h).
	IdleTimeout     caddy.Duration `json:"idle_timeout,omitempty"`
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`
}

// unmarshalConsole reads `console { url; client_secret; idle_timeout;
// session_lifetime }`; the dispenser is on "console".
func (a *App) unmarshalConsole(d *caddyfile.Dispenser) error {
	if a.Console != nil {
		return d.Err("console is set twice")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	c := new(ConsoleConfig)
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

// consoleURL is the checked console address, "" when none is set.
func (a *App) consoleURL() (string, error) {
	if a.Console == nil || a.Console.URL == "" {
		return "", nil
	}
	base, err := notify.ConsoleBase(a.Console.URL)
	if err != nil {
		return "", fmt.Errorf("console: %v", err)
	}
	return base, nil
}

// newConsole makes the app's console, or nil when there is none: no oidc
// issuer, or a store that keeps no sessions (said in the log).
func (a *App) newConsole() (*console.Console, error) {
	if a.people == nil {
		return nil, nil
	}
	base, err := a.consoleURL()
	if err != nil {
		return nil, err
	}
	cc := a.Console
	if cc == nil {
		cc = new(ConsoleConfig)
	}
	c, err := console.Assemble(console.Parts{
		Store: a.store, Actions: a.manage,
		Issuer: a.OIDC.Issuer, ClientID: a.OIDC.Audience, ClientSecret: cc.ClientSecret, Verifier: a.people,
		URL: base, Idle: time.Duration(cc.IdleTimeout), Absolute: time.Duration(cc.SessionLifetime), Now: a.now,
	})
	if errors.Is(err, console.ErrNoPeopleStore) {
		a.logger.Warn("no web console: " + err.Error())
		return nil, nil
	}
	return c, err
}

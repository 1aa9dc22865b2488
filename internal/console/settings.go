package console

import (
	"fmt"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/duration"
	"github.com/tokengate/caddy-tokengate/internal/notify"
)

// Settings set up the web console, which tokengate_admin serves at
// /console/ whenever the app has an oidc issuer.
type Settings struct {
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
	IdleTimeout     duration.Duration `json:"idle_timeout,omitempty"`
	SessionLifetime duration.Duration `json:"session_lifetime,omitempty"`
}

// BaseURL is the checked console address that webhook events link to,
// "" when none is set; s may be nil (no console block).
func (s *Settings) BaseURL() (string, error) {
	if s == nil || s.URL == "" {
		return "", nil
	}
	base, err := notify.ConsoleBase(s.URL)
	if err != nil {
		return "", fmt.Errorf("console: %v", err)
	}
	return base, nil
}

// Assemble makes the console of p as s sets it up (its address, client
// secret and session timeouts); s may be nil, for the defaults.
func (s *Settings) Assemble(p Parts) (*Console, error) {
	base, err := s.BaseURL()
	if err != nil {
		return nil, err
	}
	if s == nil {
		s = new(Settings)
	}
	p.URL, p.ClientSecret = base, s.ClientSecret
	p.Idle, p.Absolute = time.Duration(s.IdleTimeout), time.Duration(s.SessionLifetime)
	return Assemble(p)
}

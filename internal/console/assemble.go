package console

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/stepup"
	"github.com/tokengate/caddy-tokengate/internal/websession"
	"github.com/tokengate/caddy-tokengate/store"
)

// Parts are what a gateway node has that its console is made of; the
// Caddy glue hands them over and mounts the result at /console/.
type Parts struct {
	// Store keeps sessions and security keys: it must implement
	// store.PeopleStore (every backend of this module does), and MarkUsed
	// records answered step-up challenges.
	Store   store.Backend
	Actions Actions
	// The company's provider, as the oidc block names it. ClientID is the
	// public client the CLI signs in with unless ClientSecret is set.
	Issuer, ClientID, ClientSecret string
	Verifier                       Verifier
	// URL, when set, is the console's one address
	// (https://gateway.example.com): the relying party of security keys.
	// Empty: each host the console is reached at is its own.
	URL string
	// Idle and Absolute are the session timeouts (defaults 30 minutes
	// and 12 hours).
	Idle, Absolute time.Duration
	Now            func() time.Time
	HTTPClient     *http.Client
}

// ErrNoPeopleStore: the store cannot keep sessions, so there is no console.
var ErrNoPeopleStore = errors.New("the store keeps no console sessions or security keys (store.PeopleStore): no console")

// Assemble makes the console of p.
func Assemble(p Parts) (*Console, error) {
	people, ok := p.Store.(interface {
		store.PeopleStore
		MarkUsed(ctx context.Context, key []byte, expires, now time.Time) error
	})
	if !ok {
		return nil, ErrNoPeopleStore
	}
	cfg := Config{
		Actions:  p.Actions,
		Sessions: websession.New(people, websession.Config{Idle: p.Idle, Absolute: p.Absolute, Now: p.Now}),
		Identity: &OIDC{Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret, Verifier: p.Verifier, HTTPClient: p.HTTPClient},
		Now:      p.Now,
	}
	if p.URL != "" {
		rp, err := relyingParty(p.URL)
		if err != nil {
			return nil, err
		}
		steps, err := stepup.New(stepup.Config{RPID: rp.host, Origins: []string{rp.origin}, Now: p.Now}, people)
		if err != nil {
			return nil, err
		}
		cfg.StepUp = steps
	} else {
		cfg.StepUpStore = people
	}
	return New(cfg)
}

type rp struct{ host, origin string }

// relyingParty reads the console's address: an http or https URL whose
// host is a name (browsers refuse WebAuthn on an IP address).
func relyingParty(raw string) (rp, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return rp{}, fmt.Errorf("console address %q: want http(s)://<host name>[:port]", raw)
	}
	if net.ParseIP(u.Hostname()) != nil {
		return rp{}, fmt.Errorf("console address %q: security keys need a host name, not an IP address (use localhost for a local test)", raw)
	}
	return rp{host: u.Hostname(), origin: u.Scheme + "://" + u.Host}, nil
}

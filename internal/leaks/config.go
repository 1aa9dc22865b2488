package leaks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Config configures the intake of secrets found in the wild. POST
// /v1/leaks (reports from callers the admin policy lets report) is always
// on; GitHub's alerts and webhooks only when their keys or secret are set.
//
// It is the tokengate option's `leaks { ... }` block (docs/caddyfile.md).
type Config struct {
	// GitHubKeys is a file or http(s) URL holding GitHub's public-keys
	// document (https://api.github.com/meta/public_keys/secret_scanning).
	GitHubKeys string `json:"github_keys,omitempty"`
	// WebhookSecret verifies X-Hub-Signature-256 of GitHub's
	// secret_scanning_alert webhook. Placeholders are expanded.
	WebhookSecret string `json:"webhook_secret,omitempty"`
	// Limit brakes the intake endpoints per client address.
	Limit *addrlimit.AttemptLimit `json:"limit,omitempty"`
}

// FromConfig expands the placeholders of c's keys location and webhook
// secret with expand (the placeholders of the config's host) and builds
// the intake; c may be nil (nothing configured). An error never echoes
// the secret.
func FromConfig(c *Config, expand func(string) (string, error), p Parts) (*Intake, error) {
	c = cmp.Or(c, &Config{})
	keys, err := expand(c.GitHubKeys)
	if err != nil {
		return nil, fmt.Errorf("leaks: github_keys: %v", err)
	}
	var secret string
	if c.WebhookSecret != "" {
		// Not echoed: a secret with a brace in it is still a secret.
		secret, err = expand(c.WebhookSecret)
		if err != nil || secret == "" {
			return nil, errors.New("leaks: webhook_secret is missing or has a placeholder that is unknown or empty")
		}
	}
	return New(Config{GitHubKeys: keys, WebhookSecret: secret, Limit: c.Limit}, p), nil
}

// Parts are what the node lends the intake.
type Parts struct {
	Ledger     Ledger
	Trail      Trail
	Now        func() time.Time
	ClientAddr func(*http.Request) string
	OnError    func(route string, err error)
}

// New builds the intake of c, its placeholders already expanded; a limit
// not set takes DefaultAttempts and DefaultWindow.
func New(c Config, p Parts) *Intake {
	attempts, window := c.Limit.Or(DefaultAttempts, DefaultWindow)
	in := &Intake{
		Ledger:     p.Ledger,
		Trail:      p.Trail,
		Brake:      addrlimit.New(attempts, window, p.Now),
		Now:        p.Now,
		ClientAddr: p.ClientAddr,
		OnError:    p.OnError,
	}
	if c.GitHubKeys != "" {
		in.GitHubKeys = NewKeys(c.GitHubKeys, nil, p.Now)
	}
	if c.WebhookSecret != "" {
		in.WebhookSecret = []byte(c.WebhookSecret)
	}
	return in
}

// Exposer revokes a token as leaked and writes its lines:
// manage.Service.
type Exposer interface {
	Expose(ctx context.Context, actor, id string, e lifecycle.Exposure) (*store.Token, error)
}

// StoreLedger is the intake's view of a store: lookups by the hash of a
// secret (under the previous pepper too, while one is being rotated out)
// and exposure through the management service, which announces it.
type StoreLedger struct {
	Exposer
	Store    store.Store
	Hasher   *token.Hasher
	Previous *token.Hasher // nil when no pepper is being rotated out
}

// Find returns the token whose secret is secret.
func (l StoreLedger) Find(ctx context.Context, secret string) (*store.Token, error) {
	h := l.Hasher.Hash(secret)
	t, err := l.Store.GetByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) && l.Previous != nil {
		h = l.Previous.Hash(secret)
		t, err = l.Store.GetByHash(ctx, h[:])
	}
	return t, err
}

var _ Ledger = StoreLedger{}

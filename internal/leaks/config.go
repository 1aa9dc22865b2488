package leaks

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Config is the intake as the operator configured it, placeholders
// already expanded. POST /v1/leaks (reports from callers the admin policy
// lets report) is always on; GitHub's alerts and webhooks only when their
// keys or secret are set.
type Config struct {
	// GitHubKeys is a file or http(s) URL holding GitHub's public-keys
	// document; empty refuses partner alerts.
	GitHubKeys string
	// WebhookSecret verifies the secret_scanning_alert webhook; empty
	// refuses it.
	WebhookSecret string
	// Attempts per Window and client address; zero takes
	// DefaultAttempts and DefaultWindow.
	Attempts int
	Window   time.Duration
}

// Parts are what the node lends the intake.
type Parts struct {
	Ledger     Ledger
	Trail      Trail
	Now        func() time.Time
	ClientAddr func(*http.Request) string
	OnError    func(route string, err error)
}

// New builds the intake of c.
func New(c Config, p Parts) *Intake {
	in := &Intake{
		Ledger:     p.Ledger,
		Trail:      p.Trail,
		Brake:      addrlimit.New(cmp.Or(c.Attempts, DefaultAttempts), cmp.Or(c.Window, DefaultWindow), p.Now),
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

package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Leaks configures the intake of secrets found in the wild (the work is
// in internal/leaks; this file is its wiring).
//
// Caddyfile, in the tokengate global option:
//
//	leaks {
//		github_keys <file|url>         # GitHub's secret scanning public keys: enables POST /v1/leaks/github
//		webhook_secret <secret>        # the organisation webhook's secret: enables secret_scanning_alert on POST /v1/leaks
//		limit <attempts> <window>      # reports per client address; default 60 1m
//	}
type Leaks struct {
	// GitHubKeys is a file or http(s) URL holding GitHub's public-keys
	// document (https://api.github.com/meta/public_keys/secret_scanning).
	GitHubKeys string `json:"github_keys,omitempty"`
	// WebhookSecret verifies X-Hub-Signature-256 of GitHub's
	// secret_scanning_alert webhook. Placeholders are expanded.
	WebhookSecret string `json:"webhook_secret,omitempty"`
	// Limit brakes the intake endpoints per client address.
	Limit *AttemptLimit `json:"limit,omitempty"`
}

// unmarshalLeaks reads `leaks { ... }`; the dispenser is on "leaks".
func (a *App) unmarshalLeaks(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	l := cmp.Or(a.Leaks, &Leaks{})
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

// provisionLeaks builds the intake. POST /v1/leaks (reports from callers
// the admin policy lets report) is always on; GitHub's alerts and
// webhooks only when their keys or secret are configured.
func (a *App) provisionLeaks(hasher, previous *token.Hasher) (*leaks.Intake, error) {
	cfg := cmp.Or(a.Leaks, &Leaks{})
	limit := cmp.Or(cfg.Limit, &AttemptLimit{})
	in := &leaks.Intake{
		Ledger: ledger{store: a.store, hasher: hasher, previous: previous, manage: a.manage},
		Trail:  a.manage,
		Brake: addrlimit.New(cmp.Or(limit.Attempts, leaks.DefaultAttempts),
			cmp.Or(time.Duration(limit.Window), leaks.DefaultWindow), a.now),
		Now: a.now,
		ClientAddr: func(r *http.Request) string {
			ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
			return ip
		},
		OnError: func(route string, err error) {
			a.logger.Error("leak intake failed", zap.String("route", route), zap.Error(err))
		},
	}
	repl := caddy.NewReplacer()
	if cfg.GitHubKeys != "" {
		location, err := repl.ReplaceOrErr(cfg.GitHubKeys, true, true)
		if err != nil {
			return nil, fmt.Errorf("leaks: github_keys: %v", err)
		}
		in.GitHubKeys = leaks.NewKeys(location, nil, a.now)
	}
	if cfg.WebhookSecret != "" {
		// Not echoed: a secret with a brace in it is still a secret.
		secret, err := repl.ReplaceOrErr(cfg.WebhookSecret, true, true)
		if err != nil || secret == "" {
			return nil, errors.New("leaks: webhook_secret is missing or has a placeholder that is unknown or empty")
		}
		in.WebhookSecret = []byte(secret)
	}
	return in, nil
}

// ledger is the intake's view of the store: lookups by the hash of a
// secret (under the previous pepper too, while one is being rotated out)
// and exposure through the management service, which announces it.
type ledger struct {
	store    store.Store
	hasher   *token.Hasher
	previous *token.Hasher
	manage   *manage.Service
}

func (l ledger) Find(ctx context.Context, secret string) (*store.Token, error) {
	h := l.hasher.Hash(secret)
	t, err := l.store.GetByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) && l.previous != nil {
		h = l.previous.Hash(secret)
		t, err = l.store.GetByHash(ctx, h[:])
	}
	return t, err
}

func (l ledger) Expose(ctx context.Context, actor, id string, e lifecycle.Exposure) (*store.Token, error) {
	return l.manage.Expose(ctx, actor, id, e)
}

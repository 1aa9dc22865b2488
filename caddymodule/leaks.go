package caddymodule

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/token"
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

// provisionLeaks expands the placeholders of the leaks block and builds
// the intake (leaks.New).
func (a *App) provisionLeaks(hasher, previous *token.Hasher) (*leaks.Intake, error) {
	cfg := cmp.Or(a.Leaks, &Leaks{})
	limit := cmp.Or(cfg.Limit, &AttemptLimit{})
	repl := caddy.NewReplacer()
	keys, err := repl.ReplaceOrErr(cfg.GitHubKeys, true, true)
	if err != nil {
		return nil, fmt.Errorf("leaks: github_keys: %v", err)
	}
	var secret string
	if cfg.WebhookSecret != "" {
		// Not echoed: a secret with a brace in it is still a secret.
		secret, err = repl.ReplaceOrErr(cfg.WebhookSecret, true, true)
		if err != nil || secret == "" {
			return nil, errors.New("leaks: webhook_secret is missing or has a placeholder that is unknown or empty")
		}
	}
	return leaks.New(leaks.Config{
		GitHubKeys: keys, WebhookSecret: secret, Attempts: limit.Attempts, Window: time.Duration(limit.Window),
	}, leaks.Parts{
		Ledger:     leaks.StoreLedger{Store: a.store, Hasher: hasher, Previous: previous, Exposer: a.manage},
		Trail:      a.manage,
		Now:        a.now,
		ClientAddr: caddyHost{}.ClientIP,
		OnError: func(route string, err error) {
			a.logger.Error("leak intake failed", zap.String("route", route), zap.Error(err))
		},
	}), nil
}

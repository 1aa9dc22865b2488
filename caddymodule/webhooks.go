package caddymodule

import (
	"context"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/notify"
)

// Webhook is a receiver of events about token requests
// (request.pending, request.approved, request.denied, request.lapsed)
// and revocations (token.revoked). Each event is a JSON POST signed as
// the Standard Webhooks specification says (webhook-id,
// webhook-timestamp, webhook-signature; package webhook verifies them),
// and for one more release also in the older Tokengate-Signature header;
// it never carries a secret.
type Webhook struct {
	// URL gets the POSTs: https, or http to a loopback address.
	URL string `json:"url"`
	// Secret keys the signatures: a Standard Webhooks secret (whsec_ and
	// the base64 of at least 24 random bytes) or any string of at least
	// 32 characters. Placeholders such as {env.TOKENGATE_WEBHOOK_SECRET}
	// are expanded.
	Secret string `json:"secret"`
	// Events limits the webhook to these types; default all.
	Events []string `json:"events,omitempty"`
}

// provisionWebhooks builds the dispatcher of the configured webhooks,
// their placeholders expanded as Caddy expands them; nil when none is
// configured.
func (a *App) provisionWebhooks() (*notify.Dispatcher, error) {
	hooks := make([]notify.HookConfig, len(a.Webhooks))
	for i, w := range a.Webhooks {
		hooks[i] = notify.HookConfig(w)
	}
	repl := caddy.NewReplacer()
	expand := func(s string) (string, error) { return repl.ReplaceOrErr(s, true, true) }
	return notify.FromConfig(hooks, expand, notify.Options{Logger: a.logger.Named("webhook"), Outcome: metrics.WebhookOutcome})
}

// sweepLapses announces approved requests that went unclaimed, until ctx
// ends (manage.SweepLapses).
func (a *App) sweepLapses(ctx context.Context) {
	a.manage.SweepLapses(ctx, manage.LapseSweepInterval, func(err error) {
		a.logger.Error("looking for lapsed requests", zap.Error(err))
	})
}

// unmarshalWebhook parses
//
//	webhook <url> {
//		secret <secret>
//		events <type...>
//	}
func (a *App) unmarshalWebhook(d *caddyfile.Dispenser) error {
	var w Webhook
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

package notify

import (
	"fmt"

	"github.com/tokengate/caddy-tokengate/webhook"
)

// HookConfig is a receiver of events about token requests
// (request.pending, request.approved, request.denied, request.lapsed)
// and revocations (token.revoked), as the operator wrote it. Each event
// is a JSON POST signed as the Standard Webhooks specification says
// (webhook-id, webhook-timestamp, webhook-signature; package webhook
// verifies them), and for one more release also in the older
// Tokengate-Signature header; it never carries a secret.
type HookConfig struct {
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

// FromConfig expands each hook's URL and secret with expand (the
// placeholders of the config's host), derives the signing key from the
// secret and builds the dispatcher; nil when no hook is configured. An
// error names the hook by its place, never by its secret.
func FromConfig(configs []HookConfig, expand func(string) (string, error), o Options) (*Dispatcher, error) {
	if len(configs) == 0 {
		return nil, nil
	}
	hooks := make([]Hook, 0, len(configs))
	for i, c := range configs {
		url, err := expand(c.URL)
		if err != nil {
			return nil, fmt.Errorf("webhook %d: url: %v", i+1, err)
		}
		// Not echoed: a secret with a brace in it is still a secret.
		secret, err := expand(c.Secret)
		if err != nil || secret == "" {
			return nil, fmt.Errorf("webhook %d: secret is missing or has a placeholder that is unknown or empty, such as an unset {env.TOKENGATE_WEBHOOK_SECRET}", i+1)
		}
		key, err := webhook.Key(secret)
		if err != nil {
			return nil, fmt.Errorf("webhook %d: %v", i+1, err)
		}
		hooks = append(hooks, Hook{URL: url, Secret: key, Events: c.Events})
	}
	d, err := New(hooks, o)
	if err != nil {
		return nil, fmt.Errorf("tokengate: %v", err)
	}
	return d, nil
}

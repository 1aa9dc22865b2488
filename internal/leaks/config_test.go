package leaks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/duration"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// While a pepper is rotated out, a secret issued under the old one is
// still found, and exposed through the management service.
func TestStoreLedgerFindsUnderThePreviousPepper(t *testing.T) {
	f := newFixture(t)
	old, current := token.NewHasher("old pepper"), token.NewHasher("new pepper")
	f.life.Hasher = old
	secret, id := f.issue(t)
	ctx := context.Background()

	rotating := StoreLedger{Exposer: f.manage, Store: f.store, Hasher: current, Previous: old}
	tok, err := rotating.Find(ctx, secret)
	if err != nil || tok.ID != id {
		t.Fatalf("Find under the previous pepper: %v %v", tok, err)
	}
	if _, err := (StoreLedger{Exposer: f.manage, Store: f.store, Hasher: current}).Find(ctx, secret); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Find with the new pepper alone: %v, want not found", err)
	}
	exposed, err := rotating.Expose(ctx, GitHubActor, id, lifecycle.Exposure{Source: "test", URL: "https://example.com/leak"})
	if err != nil || exposed.ExposedAt.IsZero() {
		t.Fatalf("Expose: %+v %v", exposed, err)
	}
	if len(f.lines("token.exposed")) != 1 {
		t.Errorf("want one token.exposed line from the management service")
	}
}

func TestNewEnablesGitHubOnlyWhenConfigured(t *testing.T) {
	now := func() time.Time { return time.Unix(0, 0) }
	in := New(Config{}, Parts{Now: now})
	if in.GitHubKeys != nil || in.WebhookSecret != nil || in.Brake == nil {
		t.Fatalf("empty config: keys %v, secret set %v, brake %v", in.GitHubKeys, in.WebhookSecret != nil, in.Brake)
	}
	in = New(Config{GitHubKeys: "testdata/keys.json", WebhookSecret: "s3cret", Limit: &addrlimit.AttemptLimit{Attempts: 2, Window: duration.Duration(time.Second)}}, Parts{Now: now})
	if in.GitHubKeys == nil || string(in.WebhookSecret) != "s3cret" {
		t.Fatalf("configured: keys %v, secret %q", in.GitHubKeys, in.WebhookSecret)
	}
}

// The placeholders of the leaks block are expanded by the host; a webhook
// secret that expands to nothing refuses the config, and the error never
// echoes the secret.
func TestFromConfigExpandsPlaceholders(t *testing.T) {
	now := func() time.Time { return time.Unix(0, 0) }
	expand := func(s string) (string, error) {
		switch s {
		case "{env.KEYS}":
			return "testdata/keys.json", nil
		case "{env.SECRET}":
			return "s3cret", nil
		case "{env.UNSET}":
			return "", nil
		case "{bad":
			return "", errors.New("unclosed placeholder")
		}
		return s, nil
	}
	in, err := FromConfig(&Config{GitHubKeys: "{env.KEYS}", WebhookSecret: "{env.SECRET}"}, expand, Parts{Now: now})
	if err != nil || in.GitHubKeys == nil || string(in.WebhookSecret) != "s3cret" {
		t.Fatalf("expanded: %v, keys %v, secret %q", err, in.GitHubKeys, in.WebhookSecret)
	}
	if in, err := FromConfig(nil, expand, Parts{Now: now}); err != nil || in.GitHubKeys != nil || in.WebhookSecret != nil {
		t.Fatalf("nothing configured: %v %+v", err, in)
	}
	if _, err := FromConfig(&Config{GitHubKeys: "{bad"}, expand, Parts{Now: now}); err == nil || !strings.HasPrefix(err.Error(), "leaks: github_keys: ") {
		t.Errorf("bad keys placeholder: %v", err)
	}
	for _, secret := range []string{"{env.UNSET}", "{bad"} {
		_, err := FromConfig(&Config{WebhookSecret: secret}, expand, Parts{Now: now})
		if err == nil || err.Error() != "leaks: webhook_secret is missing or has a placeholder that is unknown or empty" {
			t.Errorf("%s: %v", secret, err)
		}
	}
}

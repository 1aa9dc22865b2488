package notify

import (
	"errors"
	"strings"
	"testing"
)

// FromConfig expands placeholders before it checks anything, refuses a
// secret that expands to nothing or to too little, and never echoes a
// secret in its errors.
func TestFromConfig(t *testing.T) {
	env := map[string]string{
		"{env.HOOK_URL}":    "https://hooks.example.com/XXXXsecretpath",
		"{env.HOOK_SECRET}": "a-secret-of-at-least-32-characters-0123",
		"{env.SHORT}":       "short-secret",
		"{env.EMPTY}":       "",
	}
	expand := func(s string) (string, error) {
		if strings.HasPrefix(s, "{") {
			v, ok := env[s]
			if !ok {
				return "", errors.New("unknown placeholder " + s)
			}
			return v, nil
		}
		return s, nil
	}
	if d, err := FromConfig(nil, expand, Options{}); d != nil || err != nil {
		t.Errorf("no hooks: %v %v, want no dispatcher and no error", d, err)
	}
	d, err := FromConfig([]HookConfig{{URL: "{env.HOOK_URL}", Secret: "{env.HOOK_SECRET}", Events: []string{RequestPending}}}, expand, Options{})
	if err != nil || d == nil || len(d.hooks) != 1 {
		t.Fatalf("a good hook: %v", err)
	}
	if h := d.hooks[0]; h.URL != env["{env.HOOK_URL}"] || len(h.Secret) < 32 || !h.wants(RequestPending) || h.wants(TokenRevoked) {
		t.Errorf("hook built as %+v", h.Hook)
	}
	for name, c := range map[string]struct {
		hook    HookConfig
		wantErr string
	}{
		"empty secret":   {HookConfig{URL: "https://h.example.com", Secret: "{env.EMPTY}"}, "webhook 2: secret is missing or has a placeholder that is unknown or empty"},
		"unknown secret": {HookConfig{URL: "https://h.example.com", Secret: "{env.NOPE}"}, "webhook 2: secret is missing"},
		"short secret":   {HookConfig{URL: "https://h.example.com", Secret: "{env.SHORT}"}, "webhook 2: webhook secret too short"},
		"unknown url":    {HookConfig{URL: "{env.NOPE}", Secret: "{env.HOOK_SECRET}"}, "webhook 2: url: unknown placeholder"},
		"plain http":     {HookConfig{URL: "http://h.example.com", Secret: "{env.HOOK_SECRET}"}, "tokengate: webhook 2:"},
	} {
		good := HookConfig{URL: "{env.HOOK_URL}", Secret: "{env.HOOK_SECRET}"}
		_, err := FromConfig([]HookConfig{good, c.hook}, expand, Options{})
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: %v, want %q", name, err, c.wantErr)
			continue
		}
		for _, secret := range []string{"short-secret", env["{env.HOOK_SECRET}"]} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error shows a secret: %v", name, err)
			}
		}
	}
}

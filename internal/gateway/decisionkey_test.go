package gateway

import (
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/store"
)

// Every input of a decision is part of its cache key, and nothing else is:
// header order does not matter.
func TestDecisionKey(t *testing.T) {
	tok := &store.Token{ID: "tok_a", Version: 3}
	base := Call{Service: "billing", Request: policy.Request{
		Method: "GET", Host: "h", Path: "/p", RemoteIP: "10.0.0.1",
		Headers: map[string]string{"x-a": "1", "x-b": "2"},
	}}
	key := func(t *store.Token, rev string, c Call) string { return string(appendDecisionKey(nil, t, rev, &c)) }
	want := key(tok, "rev1", base)

	same := base
	same.Request.Headers = map[string]string{"x-b": "2", "x-a": "1"}
	if got := key(tok, "rev1", same); got != want {
		t.Errorf("header order changed the key")
	}
	variants := map[string]func(*store.Token, *string, *Call){
		"token":     func(t *store.Token, _ *string, _ *Call) { t.ID = "tok_b" },
		"version":   func(t *store.Token, _ *string, _ *Call) { t.Version++ },
		"policy":    func(_ *store.Token, r *string, _ *Call) { *r = "rev2" },
		"service":   func(_ *store.Token, _ *string, c *Call) { c.Service = "search" },
		"method":    func(_ *store.Token, _ *string, c *Call) { c.Request.Method = "POST" },
		"host":      func(_ *store.Token, _ *string, c *Call) { c.Request.Host = "h2" },
		"path":      func(_ *store.Token, _ *string, c *Call) { c.Request.Path = "/q" },
		"client ip": func(_ *store.Token, _ *string, c *Call) { c.Request.RemoteIP = "10.0.0.2" },
		"header": func(_ *store.Token, _ *string, c *Call) {
			c.Request.Headers = map[string]string{"x-a": "1", "x-b": "3"}
		},
		"no header": func(_ *store.Token, _ *string, c *Call) { c.Request.Headers = nil },
		// Field boundaries: moving a byte from one field to the next.
		"boundary": func(_ *store.Token, _ *string, c *Call) { c.Request.Host, c.Request.Path = "h/", "p" },
	}
	for name, change := range variants {
		tk, rev, c := *tok, "rev1", base
		change(&tk, &rev, &c)
		if key(&tk, rev, c) == want {
			t.Errorf("%s: a different call got the same key", name)
		}
	}
}

package gateway

import (
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/store"
)

// readsEverything is what a policy that reads input whole gets.
var readsEverything = policy.Reads{Method: true, Host: true, Path: true, RawPath: true, RemoteIP: true, AllHeaders: true}

// Every input of a decision is part of its cache key, and nothing else is:
// header order does not matter.
func TestDecisionKey(t *testing.T) {
	tok := &store.Token{ID: "tok_a", Version: 3}
	base := Call{Service: "billing", Request: policy.Request{
		Method: "GET", Host: "h", Path: "/p", RawPath: "/p", RemoteIP: "10.0.0.1",
		Headers: map[string]string{"x-a": "1", "x-b": "2"},
	}}
	key := func(t *store.Token, rev string, c Call) string {
		return string(appendDecisionKey(nil, t, rev, &readsEverything, &c))
	}
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
		"raw path":  func(_ *store.Token, _ *string, c *Call) { c.Request.RawPath = "/q/../p" },
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

// A key holds only the fields the policy revision reads: calls that differ
// elsewhere share it, calls that differ in a field read never do.
func TestDecisionKeyHoldsOnlyWhatThePolicyReads(t *testing.T) {
	tok := &store.Token{ID: "tok_a", Version: 3}
	base := Call{Service: "billing", Request: policy.Request{
		Method: "GET", Host: "h", Path: "/items/1", RawPath: "/items/1", RemoteIP: "10.0.0.1",
		Headers: map[string]string{"x-tenant": "a", "x-other": "b"},
	}}
	reads := policy.Reads{Method: true, RemoteIP: true, Headers: []string{"x-tenant"}}
	key := func(c Call) string { return string(appendDecisionKey(nil, tok, "rev1", &reads, &c)) }
	want := key(base)
	ignored := map[string]func(*Call){
		"path":         func(c *Call) { c.Request.Path, c.Request.RawPath = "/items/2", "/items/2" },
		"host":         func(c *Call) { c.Request.Host = "h2" },
		"other header": func(c *Call) { c.Request.Headers = map[string]string{"x-tenant": "a"} },
	}
	for name, change := range ignored {
		c := base
		change(&c)
		if key(c) != want {
			t.Errorf("%s, which the policy does not read, changed the key", name)
		}
	}
	read := map[string]func(*Call){
		"method":         func(c *Call) { c.Request.Method = "POST" },
		"client ip":      func(c *Call) { c.Request.RemoteIP = "10.0.0.2" },
		"service":        func(c *Call) { c.Service = "search" },
		"header":         func(c *Call) { c.Request.Headers = map[string]string{"x-tenant": "b"} },
		"empty header":   func(c *Call) { c.Request.Headers = map[string]string{"x-tenant": ""} },
		"missing header": func(c *Call) { c.Request.Headers = nil },
	}
	keys := map[string]string{}
	for name, change := range read {
		c := base
		change(&c)
		k := key(c)
		if k == want {
			t.Errorf("%s, which the policy reads, did not change the key", name)
		}
		for other, ok := range keys {
			if ok == k {
				t.Errorf("%s and %s share a key", name, other)
			}
		}
		keys[name] = k
	}
}

// A policy that reads the client address only behind a CIDR of the token
// keys on it for tokens with CIDRs, and only for them.
func TestDecisionKeyHoldsTheClientAddressOnlyForTokensWithCIDRs(t *testing.T) {
	reads := policy.Reads{Method: true, RemoteIPWithCIDRs: true}
	c1 := Call{Service: "billing", Request: policy.Request{Method: "GET", RemoteIP: "10.0.0.1"}}
	c2 := c1
	c2.Request.RemoteIP = "192.0.2.7"
	key := func(t *store.Token, c Call) string { return string(appendDecisionKey(nil, t, "rev1", &reads, &c)) }
	anywhere := &store.Token{ID: "tok_a", Version: 1}
	if key(anywhere, c1) != key(anywhere, c2) {
		t.Error("a token without CIDRs: the client address changed the key")
	}
	bound := &store.Token{ID: "tok_a", Version: 1, CIDRs: []string{"10.0.0.0/8"}}
	if key(bound, c1) == key(bound, c2) {
		t.Error("a token with CIDRs: two client addresses share a key")
	}
}

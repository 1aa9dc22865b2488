package policy

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// The gateway policy's rate_limit is read into the decision, computed
// from the token and the request like scope; a value the gateway cannot
// read fails the call closed rather than counting as no limit.
func TestGatewayRateLimit(t *testing.T) {
	e, err := NewEngine(fstest.MapFS{"gateway.rego": {Data: []byte(`package tokengate.gateway

reasons := set()

rate_limit := {"requests": 10, "window": "1s"} if input.request.method == "DELETE"

rate_limit := input.token.rate_limit if input.request.method == "PUT"

rate_limit := {"requests": 100, "window": "2m"} if input.request.method == "PATCH"

rate_limit := {"requests": 1.5, "window": "1m"} if input.request.method == "POST"
`)}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := &store.Token{ID: "tok_x", RateLimit: store.RateLimit{Requests: 30, Window: 24 * time.Hour}}
	decide := func(method string) (Decision, error) {
		return e.Decide(context.Background(), GatewayQuery, GatewayInput(TokenTerm(tok), Request{Method: method}, "billing", now))
	}
	for _, c := range []struct {
		method string
		want   store.RateLimit
		err    string
	}{
		{"GET", store.RateLimit{}, ""},
		{"DELETE", store.RateLimit{Requests: 10, Window: time.Second}, ""},
		{"PUT", store.RateLimit{Requests: 30, Window: 24 * time.Hour}, ""},
		{"PATCH", store.RateLimit{}, "window must be one of"},
		{"POST", store.RateLimit{}, "whole number"},
	} {
		d, err := decide(c.method)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %+v, %v; want error %q", c.method, d, err, c.err)
			}
			continue
		}
		if err != nil || !d.Allow || d.RateLimit != c.want {
			t.Errorf("%s: rate limit %+v, %v; want %+v", c.method, d.RateLimit, err, c.want)
		}
	}
}

package gatehttp

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/store"
)

func TestCredential(t *testing.T) {
	long := "tg_" + strings.Repeat("a", maxCredentialLen+1)
	for _, c := range []struct {
		name, header string
		values       []string
		secret, why  string
	}{
		{"bearer", "Authorization", []string{"Bearer tg_abc"}, "tg_abc", ""},
		{"scheme in any case, spaces trimmed", "Authorization", []string{"bEaReR   tg_abc  "}, "tg_abc", ""},
		{"none", "Authorization", nil, "", reason.TokenMissing},
		{"another scheme", "Authorization", []string{"Basic dXNlcjpwYXNz"}, "", reason.TokenMissing},
		{"two headers", "Authorization", []string{"Bearer tg_a", "Bearer tg_b"}, "", reason.TokenMalformed},
		{"empty", "Authorization", []string{""}, "", reason.TokenMalformed},
		{"bearer alone", "Authorization", []string{"Bearer "}, "", reason.TokenMalformed},
		{"too long", "Authorization", []string{"Bearer " + long}, "", reason.TokenMalformed},
		{"own header, bare token", "X-Api-Key", []string{"tg_abc"}, "tg_abc", ""},
		{"own header, empty", "X-Api-Key", []string{""}, "", reason.TokenMalformed},
		{"own header, missing", "X-Api-Key", nil, "", reason.TokenMissing},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, v := range c.values {
				r.Header.Add(c.header, v)
			}
			if secret, why := Credential(r, c.header); secret != c.secret || why != c.why {
				t.Errorf("Credential = %q, %q; want %q, %q", secret, why, c.secret, c.why)
			}
		})
	}
}

func TestPolicyHeaders(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Tenant", "acme")
	r.Header.Set("X-Other", "not named")
	got := PolicyHeaders(r, []string{"X-Tenant", "X-Absent"})
	if want := map[string]string{"x-tenant": "acme"}; !maps.Equal(got, want) {
		t.Errorf("PolicyHeaders = %v, want %v", got, want)
	}
	if got := PolicyHeaders(r, nil); got != nil {
		t.Errorf("no names: %v, want nil", got)
	}
}

// The upstream gets the caller's identity, never the credential and never
// an identity header the client made up.
func TestHandOn(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Api-Key", "tg_secret")
	r.Header.Set("X-Tokengate-Owner", "mallory")
	r.Header.Set("X-Tokengate-Made-Up", "1")
	r.Header.Set("Accept", "application/json")
	res := gateway.Result{Outcome: gateway.Allow, Token: &store.Token{ID: "tok_1", Owner: "alice"}, DecisionID: "dec_1",
		Handoff: gateway.Handoff{Scopes: "billing:read billing:write"}}
	HandOn(r, "X-Api-Key", res)
	want := http.Header{
		"Accept":                  {"application/json"},
		"X-Tokengate-Token-Id":    {"tok_1"},
		"X-Tokengate-Owner":       {"alice"},
		"X-Tokengate-Scopes":      {"billing:read billing:write"},
		"X-Tokengate-Decision-Id": {"dec_1"},
	}
	if len(r.Header) != len(want) {
		t.Fatalf("headers %v, want %v", r.Header, want)
	}
	for name, v := range want {
		if got := r.Header.Values(name); len(got) != 1 || got[0] != v[0] {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
}

// The answer follows the refusal's class; a rate-limited call says when
// to come back and what its limit is.
func TestRefusalAnswer(t *testing.T) {
	limit := ratelimit.Decision{Limit: ratelimit.Limit{Requests: 10, Window: time.Minute}, Remaining: 0, Reset: 17 * time.Second}
	for _, c := range []struct {
		name             string
		res              gateway.Result
		status           int
		errCode          string
		challenge, retry string
		rateLimitPolicy  bool
	}{
		{"absent", deny(reason.TokenMissing), 401, "invalid_token", `Bearer realm="tokengate"`, "", false},
		{"invalid", deny(reason.TokenRevoked), 401, "invalid_token", `Bearer realm="tokengate", error="invalid_token"`, "", false},
		{"policy's own code", deny("closed_for_maintenance"), 403, "insufficient_scope", `Bearer realm="tokengate", error="insufficient_scope"`, "", false},
		{"bad request", deny(reason.PathInvalid), 400, "invalid_request", "", "", false},
		{"unavailable", gateway.Result{Outcome: gateway.Error, Refusal: reason.OfCall([]string{reason.StoreUnavailable})}, 503, "temporarily_unavailable", "", "1", false},
		{"rate limited", gateway.Result{Outcome: gateway.Deny, Refusal: reason.OfCall([]string{reason.RateLimited}), RateLimit: limit}, 429, "too_many_requests", "", "17", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			a := SetRefusalHeaders(w.Header(), c.res)
			WriteRefusal(w, a, c.res.Refusal.Code, "req-1")
			if a.Status != c.status || a.Error != c.errCode || w.Code != c.status {
				t.Fatalf("answer %+v, wrote %d; want %d %s", a, w.Code, c.status, c.errCode)
			}
			h := w.Header()
			if h.Get("WWW-Authenticate") != c.challenge || h.Get("Retry-After") != c.retry {
				t.Errorf("WWW-Authenticate %q Retry-After %q, want %q %q", h.Get("WWW-Authenticate"), h.Get("Retry-After"), c.challenge, c.retry)
			}
			if (h.Get("RateLimit-Policy") != "") != c.rateLimitPolicy || (h.Get("RateLimit") != "") != c.rateLimitPolicy {
				t.Errorf("rate-limit fields %q %q, want them: %v", h.Get("RateLimit-Policy"), h.Get("RateLimit"), c.rateLimitPolicy)
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", h)
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || !maps.Equal(body, map[string]string{"error": c.errCode, "reason": c.res.Refusal.Code, "request_id": "req-1"}) {
				t.Errorf("body %s (%v)", w.Body, err)
			}
		})
	}
}

func deny(code string) gateway.Result {
	return gateway.Result{Outcome: gateway.Deny, Refusal: reason.OfCall([]string{code})}
}

func TestCheckCredentialHeader(t *testing.T) {
	for _, c := range []struct {
		header  string
		policy  []string
		refused string
	}{
		{"Authorization", nil, ""},
		{"X-Api-Key", []string{"X-Tenant"}, ""},
		{"Cookie", nil, "tokengate: header Cookie cannot carry the credential"},
		{"X-Tokengate-Owner", nil, "tokengate: header X-Tokengate-Owner cannot carry the credential"},
		{"X-Api-Key", []string{"X-Tenant", "X-Api-Key"}, "tokengate: policy_headers cannot list X-Api-Key, the header that carries the credential"},
	} {
		err := CheckCredentialHeader(c.header, c.policy)
		if (err == nil) != (c.refused == "") || (err != nil && err.Error() != c.refused) {
			t.Errorf("%s with policy headers %v: %v, want %q", c.header, c.policy, err, c.refused)
		}
	}
}

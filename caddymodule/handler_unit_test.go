package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
)

// These tests call the handler's ServeHTTP directly, as caddyauth's tests
// do: a real bolt store, the shipped policies and a real audit logger, no
// Caddy server around them, so a failure points at the handler.

// newTestRequest is a request prepared as Caddy's server prepares one: a
// replacer and the request variables in its context.
func newTestRequest(method, target string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
}

type handlerFixture struct {
	h      *Handler
	audit  *observer.ObservedLogs
	tokens *lifecycle.Service
	store  *bolt.Store
}

func newHandlerFixture(t *testing.T) *handlerFixture {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	engine, err := policy.NewEngine(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return fakeClock.Now() }
	hasher := token.NewHasher("")
	g, err := gateway.New(gateway.Options{Store: b, Policy: engine, Hasher: hasher, DecisionCacheSize: 100, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	core, logs := observer.New(zap.InfoLevel)
	al := audit.New(zap.New(core))
	f := &handlerFixture{
		audit:  logs,
		store:  b,
		tokens: &lifecycle.Service{Store: b, Hasher: hasher, MaxTTL: 48 * time.Hour, Now: now},
		h: &Handler{
			Service: "billing", Header: "Authorization",
			app:    &App{gate: g, audit: al},
			logger: zap.NewNop(),
		},
	}
	return f
}

func (f *handlerFixture) issue(t *testing.T, spec lifecycle.Spec) string {
	t.Helper()
	secret, _, err := f.tokens.Issue(context.Background(), "test", spec)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// serve runs one call and returns the answer, whether next ran, the error
// ServeHTTP returned and the call's audit line.
//
//lint:ignore ST1008 the audit line comes last: it is read after the error
func (f *handlerFixture) serve(t *testing.T, r *http.Request) (*httptest.ResponseRecorder, bool, error, map[string]any) {
	t.Helper()
	f.audit.TakeAll()
	w := httptest.NewRecorder()
	reached := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached = true
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	err := f.h.ServeHTTP(w, r, next)
	lines := f.audit.FilterMessage("decision").AllUntimed()
	if len(lines) != 1 {
		t.Fatalf("%d audit lines, want 1", len(lines))
	}
	return w, reached, err, lines[0].ContextMap()
}

func TestServeHTTPRefusalMapping(t *testing.T) {
	t.Parallel()
	f := newHandlerFixture(t)
	reader := f.issue(t, lifecycle.Spec{Owner: "alice", Purpose: "unit", Scopes: []string{"billing:read"}, Services: []string{"billing"}, TTL: "1h"})
	unknown := token.NewSecret()
	cases := []struct {
		name, method, path, auth string
		status                   int
		reason, errCode          string
		challenge                string
	}{
		{"missing", "GET", "/billing/x", "", 401, "token_missing", "invalid_token", `Bearer realm="tokengate"`},
		{"malformed", "GET", "/billing/x", "Bearer tg_nope", 401, "token_malformed", "invalid_token", `Bearer realm="tokengate", error="invalid_token"`},
		{"unknown", "GET", "/billing/x", "Bearer " + unknown, 401, "token_unknown", "invalid_token", `Bearer realm="tokengate", error="invalid_token"`},
		{"read token writing", "POST", "/billing/x", "Bearer " + reader, 403, "scope_missing", "insufficient_scope", `Bearer realm="tokengate", error="insufficient_scope"`},
		{"encoded slash", "GET", "/billing/a%2Fb", "Bearer " + reader, 400, "path_invalid", "invalid_request", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRequest(c.method, c.path)
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			w, reached, err, line := f.serve(t, r)
			if err != nil || reached {
				t.Fatalf("err %v, next reached %v; want the handler to answer itself", err, reached)
			}
			var body map[string]string
			if json.Unmarshal(w.Body.Bytes(), &body) != nil || w.Code != c.status || body["reason"] != c.reason || body["error"] != c.errCode || body["request_id"] == "" {
				t.Fatalf("got %d %s, want %d %s/%s", w.Code, w.Body, c.status, c.errCode, c.reason)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != c.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", w.Header())
			}
			if fmt.Sprint(line["status"]) != fmt.Sprint(c.status) || line["request_id"] != body["request_id"] {
				t.Errorf("audit line %v, want status %d and the answer's request id", line, c.status)
			}
			repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			for name, want := range map[string]string{"tokengate.reason": c.reason, "tokengate.error": c.errCode, "tokengate.request_id": body["request_id"]} {
				if got, _ := repl.GetString(name); got != want {
					t.Errorf("{%s} = %q, want %q", name, got, want)
				}
			}
		})
	}

	t.Run("allowed", func(t *testing.T) {
		r := newTestRequest("GET", "/billing/x")
		r.Header.Set("Authorization", "Bearer "+reader)
		w, reached, err, line := f.serve(t, r)
		if err != nil || !reached || w.Code != http.StatusNoContent || fmt.Sprint(line["status"]) != "204" {
			t.Fatalf("err %v reached %v status %d line %v", err, reached, w.Code, line)
		}
		if r.Header.Get("Authorization") != "" {
			t.Error("the credential reached the next handler")
		}
	})

	t.Run("store down", func(t *testing.T) {
		f.store.Close()
		r := newTestRequest("GET", "/billing/x")
		// Not the unknown secret above: the gate remembers that one.
		r.Header.Set("Authorization", "Bearer "+token.NewSecret())
		w, _, err, line := f.serve(t, r)
		if err != nil || w.Code != 503 || w.Header().Get("Retry-After") != "1" || w.Header().Get("WWW-Authenticate") != "" || line["decision"] != "error" {
			t.Fatalf("err %v, got %d %v %s, line %v", err, w.Code, w.Header(), w.Body, line)
		}
	})
}

// With error routes on the server that match the refusal, ServeHTTP
// writes nothing and returns the status as a caddyhttp.Error, headers set,
// for the routes to shape; the audit line keeps the status.
func TestServeHTTPHandsRefusalsToErrorRoutes(t *testing.T) {
	t.Parallel()
	f := newHandlerFixture(t)
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{
		{Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.StaticResponse{}}},
	}}}
	r := caddyhttp.PrepareRequest(httptest.NewRequest("GET", "/billing/x", nil), caddy.NewReplacer(), nil, srv)
	w, reached, err, line := f.serve(t, r)
	herr, ok := err.(caddyhttp.HandlerError)
	if !ok || herr.StatusCode != 401 || herr.Err.Error() != "token_missing" || reached {
		t.Fatalf("err %#v, reached %v; want a 401 caddyhttp.Error carrying the reason", err, reached)
	}
	if w.Body.Len() != 0 || w.Header().Get("WWW-Authenticate") != `Bearer realm="tokengate"` || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("wrote %q with headers %v; want headers only", w.Body, w.Header())
	}
	if fmt.Sprint(line["status"]) != "401" {
		t.Errorf("audit status %v, want 401", line["status"])
	}

	// Error routes that would not match this refusal leave the default
	// answer in place.
	srv.Errors.Routes[0].MatcherSets = caddyhttp.MatcherSets{{caddyhttp.MatchHost{"elsewhere.example"}}}
	r = caddyhttp.PrepareRequest(httptest.NewRequest("GET", "/billing/x", nil), caddy.NewReplacer(), nil, srv)
	w, _, err, _ = f.serve(t, r)
	if err != nil || w.Code != 401 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("err %v, got %d %s; want the JSON 401", err, w.Code, w.Body)
	}
}

// The credential's header never becomes policy input: the secret would
// sit in every decision cache key and in the log of any print() in the
// policy. (Provision canonicalizes both names before Validate runs.)
func TestPolicyHeadersCannotListTheCredentialHeader(t *testing.T) {
	t.Parallel()
	for _, header := range []string{"Authorization", "X-Api-Key"} {
		h := &Handler{Service: "billing", Header: header, PolicyHeaders: []string{"X-Request-Class", header}}
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "policy_headers") {
			t.Errorf("header %s listed in policy_headers: %v, want a refusal", header, err)
		}
	}
	ok := &Handler{Service: "billing", Header: "Authorization", PolicyHeaders: []string{"X-Request-Class"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("another header refused: %v", err)
	}
}
